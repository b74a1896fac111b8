"""Who may call what: one access rule per route (or per protocol root), by role.

The DICOMweb roots are covered as wholes (every resource of a root serves the same kind of
data); each JSON API route has a rule of its own, so a new route without one is refused until
someone decides who may call it (the authorization matrix test enumerates the app's route
table and fails on any route this table does not cover).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from radcase_pacs.auth.principal import Role

EVERY_ROLE = frozenset(Role)
CLINICAL = frozenset({Role.ADMIN, Role.EDUCATOR, Role.SERVICE})
EDUCATORS = frozenset({Role.EDUCATOR})
PEOPLE = frozenset({Role.ADMIN, Role.EDUCATOR, Role.LEARNER})
"""Signed-in people (not API keys): who takes quizzes and has progress."""
PROGRAM_OWNERS = frozenset({Role.ADMIN, Role.EDUCATOR})
ADMINS = frozenset({Role.ADMIN})
MONITORING = frozenset({Role.ADMIN, Role.SERVICE})
READ = frozenset({"GET", "HEAD"})
WRITE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
POST = frozenset({"POST"})


@dataclass(frozen=True)
class Rule:
    """``path`` is a route template, or a root ending in "/" covering everything below it;
    ``roles`` None means no authentication is needed."""

    path: str
    methods: frozenset[str]
    roles: frozenset[Role] | None
    home_only: bool = False
    """Only for principals of the deployment's home institution: what it shows spans every
    institution (the server's metrics, the list of institutions)."""
    page: bool = False
    """A page of the web app: refused the way a browser needs (to the sign-in form, or a page
    saying no), and its forms carry their CSRF token in the body."""
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", _compile(self.path))

    @property
    def is_root(self) -> bool:
        """A protocol root ("/dicomweb/"); "/" alone is the web app's home page."""
        return self.path != "/" and self.path.endswith("/")

    def matches(self, method: str, path: str) -> bool:
        if method not in self.methods:
            return False
        if self.is_root:
            return path.startswith(self.path) or path == self.path.rstrip("/")
        return self.pattern.fullmatch(path) is not None


def _compile(template: str) -> re.Pattern[str]:
    """A Starlette path template as a regex: ``{name}`` one segment, ``{name:path}`` any."""
    out = []
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{") and part.endswith("}"):
            out.append(".+" if part.endswith(":path}") else "[^/]+")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


RULES: tuple[Rule, ...] = (
    # -- the web app's pages (radcase_pacs.web) -------------------------------------------
    Rule("/login", READ | POST, None, page=True),
    Rule("/logout", POST, None, page=True),
    Rule("/static/{path:path}", READ, None),
    Rule("/", READ, PEOPLE, page=True),
    Rule("/review", POST, PEOPLE, page=True),
    Rule("/sessions/{session_id}/items/{position}", READ, PEOPLE, page=True),
    Rule("/sessions/{session_id}/items/{position}/hint", POST, PEOPLE, page=True),
    Rule("/sessions/{session_id}/items/{position}/answer", POST, PEOPLE, page=True),
    Rule("/progress", READ, PEOPLE, page=True),
    Rule("/admin/users", READ | POST, ADMINS, page=True),
    Rule("/admin/users/{username}", POST, ADMINS, page=True),
    Rule("/admin/keys", READ | POST, ADMINS, page=True),
    Rule("/admin/keys/{key_id}/revoke", POST, ADMINS, page=True),
    Rule("/admin/institutions", READ | POST, ADMINS, home_only=True, page=True),
    Rule("/admin/audit", READ, ADMINS, page=True),
    Rule("/admin/status", READ, ADMINS, home_only=True, page=True),
    Rule("/teach/groups", READ | POST, EDUCATORS, page=True),
    Rule("/teach/groups/{group_id}", READ | POST, EDUCATORS, page=True),
    Rule("/teach/groups/{group_id}/delete", POST, EDUCATORS, page=True),
    Rule("/teach/groups/{group_id}/assignments", POST, EDUCATORS, page=True),
    Rule("/teach/groups/{group_id}/assignments/{assignment_id}/delete", POST, EDUCATORS, page=True),
    Rule("/teach/groups/{group_id}/progress", READ, EDUCATORS, page=True),
    Rule("/teach/program", READ | POST, PROGRAM_OWNERS, page=True),
    Rule("/teach/studies", READ, EDUCATORS, page=True),
    Rule("/teach/studies/{study}", READ | POST, EDUCATORS, page=True),
    Rule("/teach/cases", READ, EDUCATORS, page=True),
    Rule("/teach/cases/{case_id}", READ | POST, EDUCATORS, page=True),
    Rule("/teach/cases/{case_id}/as-learner", READ, EDUCATORS, page=True),
    Rule("/teach/cases/{case_id}/publish", POST, EDUCATORS, page=True),
    Rule("/teach/cases/{case_id}/unpublish", POST, EDUCATORS, page=True),
    Rule("/teach/cases/{case_id}/delete", READ | POST, EDUCATORS, page=True),
    Rule("/teach/cases/{case_id}/review", READ | POST, EDUCATORS, page=True),
    Rule("/teach/cases/{case_id}/review/{sop_instance_uid}/frames/{frames}", READ, EDUCATORS),
    Rule("/teach/cases/{case_id}/questions", READ, EDUCATORS, page=True),
    Rule("/teach/cases/{case_id}/questions/new", READ | POST, EDUCATORS, page=True),
    Rule("/teach/cases/{case_id}/questions/{question_id}", READ | POST, EDUCATORS, page=True),
    Rule("/teach/cases/{case_id}/questions/{question_id}/move", POST, EDUCATORS, page=True),
    Rule(
        "/teach/cases/{case_id}/questions/{question_id}/delete", READ | POST, EDUCATORS, page=True
    ),
    Rule(
        "/teach/cases/{case_id}/questions/{question_id}/preview", READ | POST, EDUCATORS, page=True
    ),
    # -- protocol roots and the JSON API -------------------------------------------------
    Rule("/healthz", READ, None),
    Rule("/metrics", READ, MONITORING, home_only=True),
    Rule("/dicomweb/", READ | WRITE, CLINICAL),
    Rule("/teaching/dicomweb/", READ, EVERY_ROLE),
    Rule("/api/openapi.json", READ, None),
    Rule("/api/auth/token", POST, None),
    Rule("/api/auth/logout", POST, EVERY_ROLE),
    Rule("/api/me", READ, EVERY_ROLE),
    Rule("/api/codes", READ, EVERY_ROLE),
    Rule("/api/cases", READ | {"POST"}, EDUCATORS),
    Rule("/api/cases/{case_id}", READ | {"PATCH", "DELETE"}, EDUCATORS),
    Rule("/api/cases/{case_id}/publish", POST, EDUCATORS),
    Rule("/api/cases/{case_id}/unpublish", POST, EDUCATORS),
    Rule("/api/cases/{case_id}/instances/{sop_instance_uid}/review", POST, EDUCATORS),
    Rule("/api/cases/{case_id}/questions", READ | POST, EDUCATORS),
    Rule("/api/cases/{case_id}/questions/{question_id}", frozenset({"PUT", "DELETE"}), EDUCATORS),
    Rule("/api/program", READ, EVERY_ROLE),
    Rule("/api/program", frozenset({"PUT"}), PROGRAM_OWNERS),
    Rule("/api/groups", READ | POST, EDUCATORS),
    Rule("/api/groups/{group_id}", READ | {"PUT", "DELETE"}, EDUCATORS),
    Rule("/api/groups/{group_id}/assignments", READ | POST, EDUCATORS),
    Rule("/api/groups/{group_id}/progress", READ, EDUCATORS),
    Rule("/api/groups/{group_id}/progress.csv", READ, EDUCATORS),
    Rule("/api/assignments", READ, PEOPLE),
    Rule("/api/assignments/{assignment_id}", frozenset({"DELETE"}), EDUCATORS),
    Rule("/api/quiz/sessions", POST, PEOPLE),
    Rule("/api/quiz/sessions/{session_id}", READ, PEOPLE),
    Rule("/api/quiz/sessions/{session_id}/items/{position}", READ, PEOPLE),
    Rule("/api/quiz/sessions/{session_id}/items/{position}/hint", POST, PEOPLE),
    Rule("/api/quiz/sessions/{session_id}/items/{position}/answer", POST, PEOPLE),
    Rule("/api/progress", READ, PEOPLE),
    Rule("/api/progress/history", READ, PEOPLE),
    Rule("/api/progress.csv", READ, PEOPLE),
    Rule("/api/xapi/statements", READ, EVERY_ROLE),
    Rule("/api/users", READ | {"POST"}, ADMINS),
    Rule("/api/users/{username}", READ | {"PATCH"}, ADMINS),
    Rule("/api/institutions", READ | POST, ADMINS, home_only=True),
    Rule("/api/api-keys", READ | {"POST"}, ADMINS),
    Rule("/api/api-keys/{key_id}", frozenset({"DELETE"}), ADMINS),
    Rule("/api/audit", READ, ADMINS),
    Rule("/api/audit.csv", READ, ADMINS),
)


def rule_for(method: str, path: str, rules: tuple[Rule, ...] = RULES) -> Rule | None:
    """The rule of a request or of a route template: an exact template first (a path may
    have one rule per set of methods), then a root."""
    method = "GET" if method == "HEAD" else method
    exact = [r for r in rules if not r.is_root and (r.path == path or r.pattern.fullmatch(path))]
    if exact:
        return next((r for r in exact if method in r.methods), None)
    for rule in rules:
        if rule.is_root and rule.matches(method, path):
            return rule
    return None

"""Who is making a request: the user, their institution (tenant) and their role.

The authentication middleware puts a :class:`Principal` in the ASGI scope's state under
``principal`` (and, for the protocol apps that know nothing of auth, the plain ``user`` and
``tenant`` values); everything downstream (DICOMweb tenant scoping, the teaching API, the
audit log) reads it from there.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    ADMIN = "admin"
    EDUCATOR = "educator"
    LEARNER = "learner"
    SERVICE = "service"
    """A system (a PACS, a research pipeline) calling with an API key."""


@dataclass(frozen=True)
class Principal:
    user: str
    tenant: str
    role: Role
    session: str | None = None
    """The login session an access token belongs to (None for API keys and open mode)."""


def principal_of(scope: Mapping[str, Any]) -> Principal | None:
    """The principal of an ASGI scope (a request's ``request.scope``)."""
    found = (scope.get("state") or {}).get("principal")
    return found if isinstance(found, Principal) else None


def attach(scope: MutableMapping[str, Any], principal: Principal) -> None:
    state = scope.setdefault("state", {})
    state["principal"] = principal
    state["user"] = principal.user
    state["tenant"] = principal.tenant

"""What the case service refuses, each naming the field or the thing that is wrong.

CaseError
├── NotFound              no such thing (a session, a question, a group...) for this caller
│   └── CaseNotFound      no such case (in the caller's institution)
├── InvalidField          a value that parsed but cannot be used (``field`` names it)
└── Conflict              the request clashes with the case's state (publication gate)
"""

from __future__ import annotations


class CaseError(Exception):
    pass


class NotFound(CaseError):
    """No such thing among the teaching use cases' own (the teaching API answers 404). Not
    :class:`storage.errors.NotFound`, which the archive raises for an unknown UID."""

    def __init__(self, what: str) -> None:
        super().__init__(f"no such {what}")


class CaseNotFound(NotFound):
    def __init__(self, case_id: str) -> None:
        super().__init__("case")
        self.case_id = case_id


class InvalidField(CaseError):
    """``where`` is the part of the request the field is in: ``body`` or ``query``."""

    def __init__(self, field: tuple[str | int, ...], message: str, where: str = "body") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.where = where


class Conflict(CaseError):
    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

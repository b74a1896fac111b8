"""The check registry: ``@check`` records a function under its service, name and section.

A check takes the :class:`~conformance.context.Context` and returns normally to pass, raises
:class:`Failure` (what was expected, what came) to fail, or :class:`Skip` (why) to skip. Any
other exception is a failure too: a server answer the check could not even parse is not
conformance.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from conformance.context import Context

Status = Literal["PASS", "FAIL", "SKIP"]
CheckFunction = Callable[["Context"], None]


class Failure(Exception):
    """The server did not do what the cited section asks."""


class Skip(Exception):
    """The check cannot run here (e.g. no DIMSE address given)."""


@dataclass(frozen=True)
class Check:
    service: str
    name: str
    section: str
    function: CheckFunction


@dataclass(frozen=True)
class Result:
    name: str
    service: str
    section: str
    status: Status
    detail: str
    seconds: float


REGISTRY: list[Check] = []


def check(*, service: str, name: str, section: str) -> Callable[[CheckFunction], CheckFunction]:
    """Registers a check; within a service, registration order is run order."""

    def register(function: CheckFunction) -> CheckFunction:
        REGISTRY.append(Check(service, name, section, function))
        return function

    return register


def run_check(item: Check, context: Context) -> Result:
    started = time.monotonic()
    status: Status = "PASS"
    detail = ""
    try:
        item.function(context)
    except Skip as exc:
        status, detail = "SKIP", str(exc)
    except Failure as exc:
        status, detail = "FAIL", str(exc)
    except Exception as exc:
        status = "FAIL"
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        detail = f"{type(exc).__name__}: {exc} (at {frame.filename}:{frame.lineno})"
    seconds = time.monotonic() - started
    return Result(item.name, item.service, item.section, status, detail, seconds)


def expect(condition: object, message: str) -> None:
    """Fails the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Failure(message)

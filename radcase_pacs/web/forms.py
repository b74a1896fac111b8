"""Reading a page's form post: its fields, once its CSRF token has been checked.

The auth middleware refuses a cookie-carried post from another origin, but the token a form
carries in its body only the page's handler can read; every form handler reads its form
through :func:`submitted`, so none can forget the check.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from radcase_pacs.auth import browser
from radcase_pacs.auth.principal import principal_of

MAX_FIELDS = 200
MAX_FORM_BYTES = 64 * 1024


class Forged(HTTPException):
    def __init__(self) -> None:
        super().__init__(403, "This form has expired or did not come from this site. Reload it.")


async def submitted(request: Request, signing_key: Callable[[], str]) -> FormData:
    """The form's fields; :class:`Forged` when a cookie session posted it without its token.
    Files are not accepted and the size is bounded: our forms carry short text."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise HTTPException(413, "The form is too large.")
    form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    if request.scope.get("state", {}).get(browser.BY_COOKIE):
        principal = principal_of(request.scope)
        token = form.get(browser.CSRF_FIELD)
        session = principal.session if principal else None
        if not isinstance(token, str) or not browser.csrf_valid(signing_key(), session, token):
            raise Forged()
    return form


def field(form: FormData, name: str, *, limit: int = 2000) -> str:
    """A text field, "" when absent, cut to ``limit`` characters."""
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""

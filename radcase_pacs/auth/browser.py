"""Browser sessions: the session cookie, its CSRF token and the same-origin check.

A browser signs in through the web app's form and gets a cookie naming a session record of
the same kind as an API token's (:mod:`radcase_pacs.auth.sessions`), so logout, a password
change or disabling the user ends both alike, in every process. The cookie is ``HttpOnly``
(no script reads it), ``SameSite=Lax`` (another site's form post or fetch does not carry it)
and ``Secure`` when the request came over https, directly or through a proxy uvicorn trusts.

A request that a cookie authenticates and that changes state must also prove it comes from one
of our pages (OWASP's synchronizer token pattern, on top of SameSite): it carries the session's
CSRF token, an HMAC of the session id under the signing key, in the ``X-CSRF-Token`` header
(scripts) or the ``csrf`` form field (forms); and it must not come from another origin
(``Origin``, ``Sec-Fetch-Site``). Bearer tokens and API keys need neither: a browser never
attaches them by itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

COOKIE = "radcase_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
BY_COOKIE = "by_cookie"
"""Request state: the session cookie (not a header) authenticated the request."""
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_token(signing_key: str, session: str | None) -> str:
    """The CSRF token of a browser session ("" without one: nothing to protect)."""
    if not session:
        return ""
    message = f"csrf:{session}".encode()
    return hmac.new(signing_key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def csrf_valid(signing_key: str, session: str | None, given: str) -> bool:
    expected = csrf_token(signing_key, session)
    return bool(expected) and hmac.compare_digest(expected, given.strip())


def cookie_value(headers: Mapping[str, str]) -> str:
    """The session cookie of a request's headers (lower-case names), or ""."""
    for pair in headers.get("cookie", "").split(";"):
        name, _, value = pair.strip().partition("=")
        if name == COOKIE:
            return value.strip()
    return ""


def cross_origin(headers: Mapping[str, str], scheme: str) -> bool:
    """The request comes from a page of another origin (Fetch Metadata, else ``Origin``)."""
    if headers.get("sec-fetch-site", "") == "cross-site":
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    host = headers.get("host", "")
    return origin.rstrip("/") != f"{scheme}://{host}"


def set_cookie_header(value: str, *, secure: bool, max_age: int) -> str:
    attributes = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Lax", f"Max-Age={max_age}"]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


def clear_cookie_header(*, secure: bool) -> str:
    return set_cookie_header("", secure=secure, max_age=0)

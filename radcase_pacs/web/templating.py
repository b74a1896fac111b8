"""Rendering the web app's pages, and serving its static files.

Pages render on the server from Jinja2 templates (autoescaped); scripts only enhance them.
Every page answers with the headers a page of patient-adjacent data needs: a Content Security
Policy allowing only our own scripts, styles and images (no inline script, nothing from another
origin, so a closed hospital network loses nothing and an injected ``<script>`` runs nowhere),
no framing, no MIME sniffing, and ``no-store``: a page shows one user's data and must not come
back from the cache after that user signed out.

Static files are addressed with a hash of their content (``/static/app.css?v=1a2b3c4d``), so
they can be cached for a year and still change the moment a release changes them.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from radcase_pacs.auth import browser
from radcase_pacs.auth.principal import Principal, Role, principal_of

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
IMMUTABLE = "public, max-age=31536000, immutable"
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class StaticFile:
    path: Path
    version: str
    media_type: str


class StaticFiles:
    """The files of ``static/`` by name, each with its content hash; nothing outside it is
    ever served (the names are read once, not taken from the request)."""

    def __init__(self, folder: Path = STATIC) -> None:
        self.folder = folder

    @cached_property
    def files(self) -> dict[str, StaticFile]:
        found = {}
        for path in sorted(self.folder.rglob("*")):
            if path.is_file():
                name = path.relative_to(self.folder).as_posix()
                version = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
                media = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
                found[name] = StaticFile(path, version, media or "application/octet-stream")
        return found

    def url(self, name: str) -> str:
        return f"/static/{name}?v={self.files[name].version}"

    def response(self, request: Request) -> Response:
        found = self.files.get(request.path_params["path"])
        if found is None:
            return Response("no such file\n", 404, media_type="text/plain")
        current = request.query_params.get("v") == found.version
        headers = {
            "Cache-Control": IMMUTABLE if current else "no-cache",
            "X-Content-Type-Options": "nosniff",
            "ETag": f'"{found.version}"',
        }
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        return Response(found.path.read_bytes(), media_type=found.media_type, headers=headers)


class Pages:
    """The template environment and what every page knows: who is signed in, their CSRF
    token, whether signing out means anything (not with authentication off)."""

    def __init__(
        self, static: StaticFiles, signing_key: Any, *, auth_on: bool, home_tenant: str
    ) -> None:
        """``signing_key``: a callable giving the session signing key, asked for on the first
        page that needs a CSRF token (the store that keeps it is open by then)."""
        self.static = static
        self._signing_key = signing_key
        self.auth_on = auth_on
        self.home_tenant = home_tenant
        self.environment = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(("html",)),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.environment.globals["static"] = static.url

    def csrf_token(self, principal: Principal | None) -> str:
        return browser.csrf_token(self._signing_key(), principal.session if principal else None)

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        principal = principal_of(request.scope)
        values = {
            "request": request,
            "principal": principal,
            "csrf_token": self.csrf_token(principal),
            "auth_on": self.auth_on,
            "is_admin": principal is not None and principal.role is Role.ADMIN,
            "home_admin": principal is not None
            and principal.role is Role.ADMIN
            and principal.tenant == self.home_tenant,
            "path": request.url.path,
            **(context or {}),
        }
        body = self.environment.get_template(template).render(values)
        return HTMLResponse(body, status_code, headers={**PAGE_HEADERS, **(headers or {})})

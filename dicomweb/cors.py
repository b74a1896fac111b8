"""CORS for responses made outside a DICOMweb app's own CORS layer.

A viewer on another origin reads a response only if it carries
``Access-Control-Allow-Origin`` (Fetch Standard §3.2.5); without it the browser hands the
script a network error, and "the archive is unavailable, retry in 5 s" becomes "CORS
failure". The app's CORS middleware (Starlette's, in :func:`dicomweb.app.create_app`) marks
what the app answers; layers that a deployment wraps around the app (the clinical root's
audit log, the teaching root's learner view) answer some requests themselves, a 503 when
their database fails, and those never pass through it. :class:`CorsFallback` goes around
such layers and adds the headers to any response under the DICOMweb roots (``paths``) that
lacks them, for an allowed origin. Preflights are left to the app's own CORS layer, which
answers them.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class CorsFallback:
    def __init__(
        self,
        app: ASGIApp,
        origins: Sequence[str],
        exposed: Sequence[str],
        paths: Sequence[str] = ("/",),
    ) -> None:
        self.app = app
        self.origins = frozenset(origins)
        self.exposed = ", ".join(exposed)
        self.paths = tuple(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = Headers(scope=scope).get("origin") if scope["type"] == "http" else None
        if (
            origin is None
            or scope["method"] == "OPTIONS"
            or not self._allowed(origin)
            or not self._covered(scope["path"])
        ):
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "access-control-allow-origin" not in headers:
                    if "*" in self.origins:
                        headers["Access-Control-Allow-Origin"] = "*"
                    else:
                        headers["Access-Control-Allow-Origin"] = origin
                        headers.add_vary_header("Origin")
                    headers["Access-Control-Expose-Headers"] = self.exposed
            await send(message)

        await self.app(scope, receive, sending)

    def _allowed(self, origin: str) -> bool:
        return "*" in self.origins or origin in self.origins

    def _covered(self, path: str) -> bool:
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.paths)

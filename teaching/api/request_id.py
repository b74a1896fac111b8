"""A request id for every API request: sent back in ``X-Request-ID`` and named in the log
line and the body of any failure, so that a user's report and the server's log meet.

An id an outer layer already gave the request (``scope["state"]["request_id"]``) is kept,
and that layer sends the header.
"""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {}) if scope["type"] == "http" else None
        if state is None or "request_id" in state:
            await self.app(scope, receive, send)
            return
        rid = state["request_id"] = uuid.uuid4().hex[:16]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER, rid.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))

"""``Retry-After`` on the refusals of a read-only moment (RFC 9110 §10.2.3 with 503).

Each edge answers :class:`storage.errors.ReadOnly` with its own 503 body (DICOMweb's text,
the API's JSON, the web app's page, the audit middleware's refusal); this adds the header
they all need, once, in front of them: while the deployment is read-only, a 503 carries the
seconds the switch asked clients to wait.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from radcase_pacs.mode.gate import WriteGate


class RetryAfterMiddleware:
    def __init__(self, app: ASGIApp, gate: WriteGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_retry_after(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 503:
                # The refusal of a write read the mode just now; never a database read here
                # (on the event loop, and the 503 may be the database's own failure).
                mode = self.gate.last_known()
                if mode is not None and mode.read_only:
                    headers = [
                        (name, value)
                        for name, value in message.get("headers", [])
                        if name.lower() != b"retry-after"
                    ]
                    headers.append((b"retry-after", str(max(1, mode.retry_after)).encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_retry_after)

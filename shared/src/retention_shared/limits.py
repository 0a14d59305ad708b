"""Request body size limits, enforced before a body is parsed (uploads, batches)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retention_shared.problems import PROBLEM_MEDIA_TYPE, FieldProblem, problem


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware: 413 when a request body to a path under a prefix exceeds its limit.

    Checks Content-Length up front, and counts bytes as they stream in, so a chunked body that
    does not declare its length is cut off too — with the same 413, however the app reacted.
    """

    def __init__(self, app: ASGIApp, limits: dict[str, int]) -> None:
        self.app = app
        # Longest prefix first, so /v1/uploads can be larger than the rest of /v1.
        self.limits = sorted(limits.items(), key=lambda item: -len(item[0]))

    def _limit(self, path: str) -> int | None:
        return next((limit for prefix, limit in self.limits if path.startswith(prefix)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._limit(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        received = 0
        exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        # The app may catch BodyTooLarge itself (FastAPI turns any failure while reading a body
        # into 400 "There was an error parsing the body"): whatever it answers then becomes 413.
        started = replaced = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                replaced = exceeded and not started
                started = True
                if replaced:
                    await _too_large(send, limit)
                    return
            if not replaced:  # else: the body of the answer that was replaced
                await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send, limit)


async def _too_large(send: Send, limit: int) -> None:
    # Answered here, outside the app's exception handlers: the same problem+json they send.
    body = problem(
        413, [FieldProblem(field="body", problem=f"request body is larger than {limit} bytes")]
    )
    encoded = body.model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(encoded)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": encoded})

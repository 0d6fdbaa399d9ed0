"""ASGI middleware: aiwaf in front of any ASGI app (Starlette, FastAPI, Django's ASGI, …)::

    from aiwaf.asgi import AiwafMiddleware
    app = AiwafMiddleware(app)                       # or app.add_middleware(AiwafMiddleware)

HTTP requests go through the engine's phases (the body's first ``payload.max_body_bytes`` are
inspected, then given back to the app as they came); a WebSocket handshake goes through the
headers phase and a blocked one is refused (close code 1008) before the app sees it.
Settings: as :mod:`aiwaf.wsgi`.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiwaf.engine import adapter_engine, answer_parts


def _target(scope) -> str:
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else scope.get("path", "/")
    query = scope.get("query_string") or b""
    return path + ("?" + query.decode("latin-1") if query else "")


class AiwafMiddleware:
    """Wraps an ASGI application."""

    def __init__(self, app, settings: Mapping[str, object] | None = None, block_response: str = "page"):
        self.engine = adapter_engine(settings, block_response)
        self.app = app
        self.style = block_response

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        core = self.engine.core
        headers = [(n.decode("latin-1"), bytes(v)) for n, v in scope.get("headers", [])]
        client = scope.get("client") or ("", 0)
        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        answer, tx = core.request(method, _target(scope), client[0] or "", headers)
        if scope["type"] == "websocket":
            if answer is not None:
                await receive()  # websocket.connect
                return await send({"type": "websocket.close", "code": 1008})
            if tx is not None:
                core.response(tx, 101, [])
            return await self.app(scope, receive, send)
        replay = []
        if answer is None and tx is not None and tx.wants_body:
            got, more = bytearray(), True
            while more and len(got) <= tx.body_limit:
                message = await receive()
                replay.append(message)
                if message["type"] != "http.request":
                    break
                got += message.get("body", b"")
                more = message.get("more_body", False)
            answer = core.body(tx, bytes(got[: tx.body_limit]), len(got) > tx.body_limit or (more and len(got) >= tx.body_limit))
        if answer is not None:
            status, out, body = answer_parts(answer, self.style)
            out = [(n, v) for n, v in out if n.lower() != "content-length"] + [("Content-Length", str(len(body)))]
            await send({"type": "http.response.start", "status": status,
                        "headers": [(n.lower().encode(), v.encode("latin-1")) for n, v in out]})
            return await send({"type": "http.response.body", "body": body})
        if tx is None:
            return await self.app(scope, receive, send)

        async def replayed():
            if replay:
                return replay.pop(0)
            return await receive()

        async def sending(message):
            if message["type"] == "http.response.start":
                seen = [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in message.get("headers", [])
                        if n.lower() in (b"content-type", b"content-length")]
                core.response(tx, int(message["status"]), seen)
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [(b"x-aiwaf-request-id", tx.request_id.encode())]
            await send(message)

        return await self.app(scope, replayed, sending)

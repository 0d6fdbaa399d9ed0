"""WSGI middleware: aiwaf in front of any WSGI app (Flask, Bottle, Falcon, …) in two lines::

    from aiwaf.wsgi import AiwafMiddleware
    app.wsgi_app = AiwafMiddleware(app.wsgi_app)          # Flask

Settings are the ``AIWAF_*`` names (a mapping passed as ``settings=``, else the process
environment), the same as ``aiwaf serve`` reads. The phases are the Rust engine's: headers
before the app, the body (first ``payload.max_body_bytes``, given back to the app whole), and
the response when the app starts it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from aiwaf.engine import PrefixedStream, adapter_engine, answer_parts, read_prefix

_REASONS = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 429: "Too Many Requests", 503: "Service Unavailable"}


class AiwafMiddleware:
    """Wraps a WSGI application."""

    def __init__(self, app: Callable, settings: Mapping[str, object] | None = None, block_response: str = "page"):
        self.engine = adapter_engine(settings, block_response)
        self.app = app
        self.style = block_response

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        core = self.engine.core
        answer, tx = core.request_environ(environ)
        if answer is None and tx is not None and tx.wants_body:
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0) or None
            except ValueError:
                length = None
            stream = environ.get("wsgi.input")
            prefix = read_prefix(stream, length, tx.body_limit) if stream is not None else b""
            environ["wsgi.input"] = PrefixedStream(prefix, stream)
            answer = core.body(tx, prefix[: tx.body_limit], len(prefix) > tx.body_limit)
        if answer is not None:
            status, headers, body = answer_parts(answer, self.style)
            headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
            start_response(f"{status} {_REASONS.get(status, 'Blocked')}", headers)
            return [body]
        if tx is None:
            return self.app(environ, start_response)

        def start(status: str, headers: list, exc_info=None):
            try:
                code = int(status.split(" ", 1)[0])
            except ValueError:
                code = 500
            seen = [(n.lower(), v) for n, v in headers if n.lower() in ("content-type", "content-length")]
            core.response(tx, code, seen)
            headers = list(headers) + [("X-Aiwaf-Request-Id", tx.request_id)]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, start)

"""Django middleware with the seed's names.

``IPAndKeywordBlockMiddleware``, ``RateLimitMiddleware``, ``AIAnomalyMiddleware``,
``HoneypotTimingMiddleware`` and ``UUIDTamperMiddleware`` each turn on their detectors;
``AIWAFMiddleware`` turns on all of them and payload inspection. However many are listed, the
outermost one drives the engine's phases once per request (headers, body, response); the others
pass requests on. The decorator ``aiwaf.decorators.aiwaf_exempt`` exempts a view from every
check.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import MiddlewareNotUsed, PermissionDenied, RequestDataTooBig
from django.http import HttpResponse
from django.urls import Resolver404, get_urlconf, resolve

from aiwaf import conf, decorators
from aiwaf.engine import PrefixedStream, answer_parts, read_prefix


def _view_is_exempt(request) -> bool:
    """Whether the view the request resolves to is decorated with ``aiwaf_exempt``."""
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None) or get_urlconf())
    except Resolver404:
        return False
    return decorators.is_exempt(match.func)


def _answer(answer, style: str):
    status, headers, body = answer_parts(answer, "page" if style == "page" else "json")
    if style == "permission_denied" and status == 403:
        raise PermissionDenied("blocked")
    resp = HttpResponse(body, status=status)
    for name, value in headers:
        resp[name] = value
    return resp


def _body_prefix(request, limit: int) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of the body and whether it is longer, the body left readable
    for the view (Django's cached ``request.body`` when it fits, else the stream refilled)."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if 0 < length <= max(limit, 2_621_440) and not getattr(request, "_read_started", False):
        try:
            body = request.body
        except RequestDataTooBig:
            body = None
        if body is not None:
            return body[:limit], len(body) > limit
    if getattr(request, "_read_started", False) and hasattr(request, "_body"):
        return request._body[:limit], len(request._body) > limit
    stream = getattr(request, "_stream", None)
    if stream is None or getattr(request, "_read_started", False):
        return b"", False
    prefix = read_prefix(stream, length or None, limit)
    request._stream = PrefixedStream(prefix, stream)
    return prefix[:limit], len(prefix) > limit


class _AiwafMiddleware:
    """One class of the family: the outermost listed drives the phases."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        listed = conf.listed_middleware()
        me = f"{type(self).__module__}.{type(self).__qualname__}"
        if listed and me in listed and listed[0] != me:
            # the outermost aiwaf class drives the engine for all of them: this one adds its
            # detectors (conf.detectors_off) and no work per request, not even a call
            raise MiddlewareNotUsed
        self.get_response = get_response
        self.engine = conf.engine()
        self.core = self.engine.core
        self.style = conf.block_response()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self._async:
            return self.__acall__(request)
        if getattr(request, "_aiwaf", None) is not None:
            return self.get_response(request)
        early, tx = self._before(request)
        if early is not None:
            return early
        return self._after(tx, self.get_response(request))

    async def __acall__(self, request):
        if getattr(request, "_aiwaf", None) is not None:
            return await self.get_response(request)
        early, tx = self._before(request)
        if early is not None:
            return early
        response = await self.get_response(request)
        return self._after(tx, response)

    def _before(self, request):
        request._aiwaf = False
        if decorators.any_exempt() and _view_is_exempt(request):
            return None, None
        core = self.core
        answer, tx = core.request_environ(request.META)
        if answer is not None:
            return _answer(answer, self.style), None
        if tx is None:
            return None, None
        request._aiwaf = tx
        if tx.wants_body:
            body, truncated = _body_prefix(request, tx.body_limit)
            answer = core.body(tx, body, truncated)
            if answer is not None:
                return _answer(answer, self.style), None
        return None, tx

    def _after(self, tx, response):
        if tx is not None:
            # status, Content-Type/-Length read and X-Aiwaf-Request-Id added in one call
            self.core.django_response(tx, response)
        return response


class AIWAFMiddleware(_AiwafMiddleware):
    """Every detector, payload inspection included."""


class IPAndKeywordBlockMiddleware(_AiwafMiddleware):
    """The blacklist, keywords, extension probing and 404 floods."""


class RateLimitMiddleware(_AiwafMiddleware):
    """The rate limit (429) and flood ban."""


class AIAnomalyMiddleware(_AiwafMiddleware):
    """The anomaly model (with attack signs: never a ban on the score alone)."""


class HoneypotTimingMiddleware(_AiwafMiddleware):
    """The timing honeypot: form posts without, or too soon after, the GET of their page."""


class UUIDTamperMiddleware(_AiwafMiddleware):
    """404s and malformed ids on UUID paths, scored."""

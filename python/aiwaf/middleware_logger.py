"""``AIWAFLoggerMiddleware``: the seed's request logger.

With ``AIWAF_MIDDLEWARE_LOGGING = True`` (or ``manage.py aiwaf_logging --enable``) every request
is logged by the engine (the request log ``detect_and_train`` falls back to), blocked ones
included: the seed's logger never saw those. Listed alone it turns on no detector.
"""

from aiwaf.middleware import _AiwafMiddleware


class AIWAFLoggerMiddleware(_AiwafMiddleware):
    """The request log (no detector of its own)."""

"""aiwaf: a self-learning web application firewall, over a Rust engine.

Django: add ``"aiwaf"`` to ``INSTALLED_APPS`` and ``aiwaf.middleware.AIWAFMiddleware`` (or the
seed's per-detector classes) to ``MIDDLEWARE``. WSGI: ``aiwaf.wsgi.AiwafMiddleware``. ASGI:
``aiwaf.asgi.AiwafMiddleware``. Every shape drives the same Rust engine as ``aiwaf serve``.
"""

from aiwaf._core import __version__

__all__ = ["__version__"]

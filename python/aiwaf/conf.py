"""The Django project's settings as the Rust core reads them.

Every ``AIWAF_*`` setting the seed reads keeps its name and default (``AIWAF_RATE_MAX``,
``AIWAF_EXEMPT_PATHS``, ``AIWAF_ACCESS_LOG``, …); they are checked once, at start-up, and a bad
one is an ``ImproperlyConfigured`` naming it. What Django knows fills in the rest:

- storage: the project's own database (``DATABASES["default"]``, SQLite or PostgreSQL) unless
  ``AIWAF_DATABASE_URL`` names another; other engines (and in-memory SQLite) fall back to
  SQLite in ``AIWAF_DATA_DIR`` (default ``BASE_DIR / "aiwaf-data"``);
- detectors: those of the aiwaf middleware classes listed in ``MIDDLEWARE``.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from urllib.parse import quote

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from aiwaf import _core
from aiwaf.engine import BLOCK_RESPONSES, Engine, settings_text

#: Detectors each middleware class turns on (the blacklist is always enforced).
MIDDLEWARE_DETECTORS: dict[str, frozenset[str]] = {
    "aiwaf.middleware.IPAndKeywordBlockMiddleware": frozenset({"keyword", "extension_probe", "not_found_flood"}),
    "aiwaf.middleware.RateLimitMiddleware": frozenset({"rate_limit", "flood"}),
    "aiwaf.middleware.AIAnomalyMiddleware": frozenset({"anomaly"}),
    "aiwaf.middleware.HoneypotTimingMiddleware": frozenset({"honeypot"}),
    "aiwaf.middleware.UUIDTamperMiddleware": frozenset({"uuid_tamper"}),
    "aiwaf.middleware.AIWAFMiddleware": frozenset(_core.detectors()),
    "aiwaf.middleware_logger.AIWAFLoggerMiddleware": frozenset(),
}


def listed_middleware() -> list[str]:
    """The aiwaf middleware classes in ``MIDDLEWARE``, outermost first."""
    return [m for m in getattr(django_settings, "MIDDLEWARE", None) or [] if m in MIDDLEWARE_DETECTORS]


def detectors_off() -> list[str]:
    """Detectors no listed aiwaf middleware class asks for."""
    on: set[str] = set()
    for m in listed_middleware():
        on |= MIDDLEWARE_DETECTORS[m]
    return sorted(d for d in _core.detectors() if d not in on and d not in ("blacklist", "manual"))


def _database_url(values: dict[str, object]) -> str | None:
    """The storage URL for the project's database, or ``None`` for SQLite in the data dir."""
    from django.db import connections

    alias = str(values.get("AIWAF_DATABASE_ALIAS") or "default")
    if alias not in connections.databases:
        raise ImproperlyConfigured(f"AIWAF_DATABASE_ALIAS: no database named {alias!r} in DATABASES")
    d = connections[alias].settings_dict
    engine = d.get("ENGINE", "")
    if engine.endswith("sqlite3"):
        name = str(d.get("NAME") or "")
        if not name or name == ":memory:" or "mode=memory" in name:
            warnings.warn(
                "aiwaf: the project's SQLite database is in memory; aiwaf keeps its data in AIWAF_DATA_DIR",
                stacklevel=2,
            )
            return None
        return "sqlite://" + str(Path(name).resolve())
    if "postgresql" in engine or "postgis" in engine:
        user = quote(str(d.get("USER") or ""), safe="")
        password = quote(str(d.get("PASSWORD") or ""), safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = str(d.get("HOST") or "localhost")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = f":{d['PORT']}" if d.get("PORT") else ""
        return f"postgres://{auth}{host}{port}/{quote(str(d.get('NAME') or ''), safe='')}"
    warnings.warn(f"aiwaf: {engine} is not SQLite or PostgreSQL; aiwaf keeps its data in AIWAF_DATA_DIR", stacklevel=2)
    return None


_SENSITIVITY_TOP_N = {"low": 5, "medium": 10, "high": 20}


def legacy_settings(values: dict[str, object]) -> dict[str, object]:
    """Later aiwaf versions' ``AIWAF_SETTINGS`` dict, mapped onto the flat names where those are
    not set (as aiwaf 0.1.9.6 did), and its switches ``AIWAF_DISABLE_AI`` /
    ``AIWAF_ENABLE_KEYWORD_LEARNING``. Returns the extra detectors to switch off too."""
    legacy = values.get("AIWAF_SETTINGS") or {}
    if not isinstance(legacy, dict):
        raise ImproperlyConfigured("AIWAF_SETTINGS: expected a dict")

    def fill(name, value):
        if name not in values and value is not None:
            values[name] = value

    def section(name):
        v = legacy.get(name) or {}
        if not isinstance(v, dict):
            raise ImproperlyConfigured(f"AIWAF_SETTINGS[{name!r}]: expected a dict")
        return v

    rate = section("RATE_LIMITING")
    if rate.get("REQUESTS_PER_MINUTE") is not None:
        fill("AIWAF_RATE_WINDOW", 60)
        fill("AIWAF_RATE_MAX", rate["REQUESTS_PER_MINUTE"])
    fill("AIWAF_RATE_FLOOD", rate.get("BURST_THRESHOLD"))
    exemptions = section("EXEMPTIONS")
    fill("AIWAF_EXEMPT_PATHS", exemptions.get("PATHS"))
    ips = list(exemptions.get("IPS") or []) + list(section("IP_BLOCKING").get("WHITELIST") or [])
    fill("AIWAF_EXEMPT_IPS", ips or None)
    if legacy.get("TRAINING_MODE") is False:
        fill("AIWAF_DISABLE_AI", True)
    if section("KEYWORD_DETECTION").get("ENABLED") is False:
        fill("AIWAF_ENABLE_KEYWORD_LEARNING", False)
    level = legacy.get("SENSITIVITY_LEVEL")
    if level is not None:
        if level not in _SENSITIVITY_TOP_N:
            raise ImproperlyConfigured(f"AIWAF_SETTINGS['SENSITIVITY_LEVEL']: {level!r} is not low, medium or high")
        fill("AIWAF_DYNAMIC_TOP_N", _SENSITIVITY_TOP_N[level])
    custom = legacy.get("CUSTOM_PATTERNS")
    if custom:
        base = values.get("AIWAF_MALICIOUS_KEYWORDS")
        if base is None:
            from aiwaf import _core

            base = _core.default_keywords()
        values["AIWAF_MALICIOUS_KEYWORDS"] = list(base) + [p for p in custom if p not in base]
    logging = section("LOGGING")
    fill("AIWAF_MIDDLEWARE_LOGGING", logging.get("ENABLED"))
    values.pop("AIWAF_SETTINGS", None)
    off = set()
    if values.pop("AIWAF_DISABLE_AI", False):
        off.add("anomaly")
    if values.pop("AIWAF_ENABLE_KEYWORD_LEARNING", True) is False:
        values["AIWAF_DYNAMIC_TOP_N"] = 0
    if values.pop("AIWAF_ENABLE_IP_BLOCKING", True) is False:
        warnings.warn("aiwaf: AIWAF_ENABLE_IP_BLOCKING = False is ignored: bans are always enforced", stacklevel=2)
    return off


def core_settings() -> dict[str, str]:
    """The settings handed to the Rust core; ``ImproperlyConfigured`` names a bad one."""
    values = {k: getattr(django_settings, k) for k in dir(django_settings) if k.startswith("AIWAF_")}
    legacy_off = legacy_settings(values)
    style = values.get("AIWAF_BLOCK_RESPONSE", "json")
    if style not in BLOCK_RESPONSES:
        raise ImproperlyConfigured(f"AIWAF_BLOCK_RESPONSE: {style!r} is not one of {', '.join(BLOCK_RESPONSES)}")
    try:
        text = settings_text(values)
    except ValueError as e:
        raise ImproperlyConfigured(str(e)) from None
    if "AIWAF_DATA_DIR" not in text:
        base = getattr(django_settings, "BASE_DIR", None)
        text["AIWAF_DATA_DIR"] = str(Path(base) / "aiwaf-data") if base else "aiwaf-data"
    if "AIWAF_DATABASE_URL" not in text:
        url = _database_url(values)
        if url:
            text["AIWAF_DATABASE_URL"] = url
    off = set(detectors_off()) | legacy_off
    if "AIWAF_DETECTORS_OFF" in values:
        extra = values["AIWAF_DETECTORS_OFF"]
        off |= {extra} if isinstance(extra, str) else set(extra or ())
    text["AIWAF_DETECTORS_OFF"] = settings_text({"AIWAF_DETECTORS_OFF": sorted(off)})["AIWAF_DETECTORS_OFF"]
    return text


def block_response() -> str:
    return getattr(django_settings, "AIWAF_BLOCK_RESPONSE", "json")


def check() -> dict[str, str]:
    """Checks every setting now; returns them as the core reads them."""
    text = core_settings()
    try:
        _core.check_settings(text)
    except ValueError as e:
        raise ImproperlyConfigured(f"aiwaf: {e}") from None
    return text


_lock = threading.Lock()
_engine: Engine | None = None


def engine() -> Engine:
    """The process's engine (created on first use; its storage starts on the first request)."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                text = check()
                _engine = Engine(text)
    return _engine


def reset() -> None:
    """Stops the engine (tests that change settings): its records are written, its database
    connections closed; the next middleware builds a new one."""
    global _engine
    with _lock:
        if _engine is not None:
            _engine.core.close()
        _engine = None


def run_cli(args: list[str]) -> int:
    """Runs an ``aiwaf`` command line with this project's settings (management commands)."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    try:
        return _core.cli(args, check())
    except RuntimeError as e:
        from django.core.management.base import CommandError

        raise CommandError(str(e)) from None

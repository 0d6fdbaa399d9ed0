"""What every adapter shares: settings as the Rust core reads them, request parts from WSGI
environ dicts, and the bodies of block answers.

The adapters (Django, WSGI, ASGI) only translate: the Rust core (``aiwaf._core.Core``, the same
engine and phases as ``aiwaf serve``) decides.
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import PurePath

from aiwaf import _core

#: What a blocked request gets: the seed's JSON bodies (``{"error": "blocked"}`` 403,
#: ``{"error": "too_many_requests"}`` 429), or aiwaf's own answer (a small page for browsers,
#: JSON with the request id for others).
BLOCK_RESPONSES = ("json", "page", "permission_denied")


def setting_text(name: str, value: object) -> str | None:
    """One setting as the core reads it (the text an environment variable would hold)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, PurePath)):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = []
        for item in value:
            if not isinstance(item, (str, int, float, PurePath)) or isinstance(item, bool):
                raise ValueError(f"{name}: list items must be text, not {type(item).__name__}")
            items.append(str(item))
        return json.dumps(items)
    raise ValueError(f"{name}: expected text, a number, a boolean or a list, not {type(value).__name__}")


def settings_text(values: Mapping[str, object]) -> dict[str, str]:
    """The ``AIWAF_*`` entries of ``values`` as text; ``ValueError`` names a bad one."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if not name.startswith("AIWAF_"):
            continue
        text = setting_text(name, value)
        if text is not None:
            out[name] = text
    return out


def environment_settings() -> dict[str, str]:
    """``AIWAF_*`` variables of the process environment (the WSGI/ASGI default)."""
    return {k: v for k, v in os.environ.items() if k.startswith("AIWAF_")}


class Engine:
    """A started-on-demand Rust core for one configuration; its records are flushed at exit."""

    def __init__(self, settings: Mapping[str, str]):
        self.settings = dict(settings)
        self.core = _core.Core(self.settings)
        atexit.register(self.core.flush)

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits until this process's records (bans, events, request log) are stored."""
        return self.core.flush(timeout)


def adapter_engine(settings: Mapping[str, object] | None, block_response: str) -> Engine:
    """The engine of a WSGI/ASGI middleware: ``settings`` (``AIWAF_*`` names), else the process
    environment; ``block_response`` is ``json`` (the seed's bodies) or ``page`` (aiwaf's)."""
    if block_response not in ("json", "page"):
        raise ValueError(f"block_response: {block_response!r} is not one of json, page")
    return Engine(environment_settings() if settings is None else settings_text(settings))


def answer_parts(answer: _core.Answer, style: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a block answer in the configured style."""
    if style == "page":
        return answer.status, list(answer.headers), answer.body
    kept = [(n, v) for n, v in answer.headers if n.lower() in ("x-aiwaf-request-id", "retry-after", "cache-control")]
    if answer.status == 429:
        body = {"error": "too_many_requests"}
    elif answer.status == 403:
        body = {"error": "blocked"}
    elif answer.status == 503:
        body = {"error": "unavailable"}
    else:
        body = {"error": "bad_request"}
    kept.append(("Content-Type", "application/json"))
    return answer.status, kept, json.dumps(body).encode()


class PrefixedStream:
    """A body stream that gives back the bytes already read for inspection, then the rest."""

    def __init__(self, prefix: bytes, rest):
        self._prefix = prefix
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data, self._prefix = self._prefix, b""
            return data + (self._rest.read() if self._rest is not None else b"")
        if self._prefix:
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            if len(data) < size and self._rest is not None:
                data += self._rest.read(size - len(data))
            return data
        return self._rest.read(size) if self._rest is not None else b""

    def readline(self, size: int = -1) -> bytes:
        if self._prefix:
            cut = self._prefix.find(b"\n")
            end = len(self._prefix) if cut < 0 else cut + 1
            if size is not None and size >= 0:
                end = min(end, size)
            data, self._prefix = self._prefix[:end], self._prefix[end:]
            if not data.endswith(b"\n") and self._rest is not None and (size is None or size < 0 or len(data) < size):
                more = size - len(data) if size is not None and size >= 0 else -1
                data += self._rest.readline(more)
            return data
        return self._rest.readline(size) if self._rest is not None else b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterable[bytes]:
        return iter(self.readline, b"")


def read_prefix(stream, length: int | None, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes of a body stream (fewer when the length is known)."""
    want = limit + 1 if length is None else min(length, limit + 1)
    chunks, got = [], 0
    while got < want:
        data = stream.read(want - got)
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)

"""Bytes <-> Job, hardened against hostile input (no I/O).

JSON is parsed strictly: no NaN/Infinity, no duplicate keys, no numbers that
overflow, bounded nesting, UTF-8 only (a BOM is an error, not silently
skipped). Anything that fails here is "not a job" and belongs in corrupt/.

Values built in Python (params given to a submit) have no text to parse;
:func:`non_finite_at` applies the same no-NaN/Infinity rule to them, so a
submit refuses what would otherwise be written as ``null``.
"""

from __future__ import annotations

import json
import math
import re
import threading
from typing import Any

from pydantic import ValidationError

from jobspool.errors import InvalidJobFile
from jobspool.model import Job

MAX_DEPTH = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # rare: find the key to name it
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key[:60]!r}")
            seen.add(key)
    return out


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, iteratively, stopping as soon as it passes limit."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def non_finite_at(value: Any, root: str = "params") -> str | None:
    """Where the first NaN or infinite float in a JSON-like value is, or None.

    Spelled like Python (``params[0]['a']``). Iterative, and each container is
    visited once, so a deep or self-referencing value neither exhausts the
    stack nor loops.
    """
    places: list[tuple[int, object]] = []  # per container: (its container's place, its key)
    seen: set[int] = set()
    stack: list[tuple[Any, int, object]] = [(value, -1, None)]
    while stack:
        item, parent, key = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return root + "".join(f"[{k!r}]" for k in _keys(places, parent, key))
        elif isinstance(item, dict | list | tuple) and id(item) not in seen:
            seen.add(id(item))
            places.append((parent, key))
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((v, len(places) - 1, k) for k, v in reversed(list(pairs)))
    return None


def _keys(places: list[tuple[int, object]], parent: int, key: object) -> list[object]:
    """The keys from the top value down to ``key`` in the container at ``parent``."""
    keys: list[object] = []
    while parent >= 0:
        keys.append(key)
        parent, key = places[parent]
    return keys[::-1]


_local = threading.local()


def _decoder() -> json.JSONDecoder:
    """One strict decoder per thread: json.loads with hooks builds a new
    decoder and scanner on every call."""
    dec: json.JSONDecoder | None = getattr(_local, "decoder", None)
    if dec is None:
        dec = _local.decoder = json.JSONDecoder(
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    return dec


def parse_json(data: bytes) -> Any:
    """Strict JSON from bytes, or InvalidJobFile saying what is wrong."""
    if not data.strip():
        raise InvalidJobFile("empty file")
    if data.startswith(b"\xef\xbb\xbf"):
        raise InvalidJobFile("file starts with a byte order mark; save it as UTF-8 without BOM")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJobFile(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        value = _decoder().decode(text)
    except RecursionError:
        raise InvalidJobFile("JSON nested too deeply") from None
    except ValueError as exc:
        raise InvalidJobFile(f"not valid JSON: {str(exc)[:200]}") from None
    # The walk is only needed when there are enough brackets to nest that deep.
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and _depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise InvalidJobFile(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _check_encodable(data: bytes, value: Any) -> None:
    """A \\uD800-\\uDFFF escape without its pair decodes to a string that can
    never be written back as UTF-8; such a file is not a job."""
    if _SURROGATE_ESCAPE.search(data) is None:
        return
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJobFile("contains a lone UTF-16 surrogate escape") from None


def decode_job(data: bytes) -> Job:
    value = parse_json(data)
    _check_encodable(data, value)
    if not isinstance(value, dict):
        raise InvalidJobFile(f"a job file must hold a JSON object, not {type(value).__name__}")
    try:
        return Job.model_validate(value)
    except (OverflowError, ValueError, TypeError) as exc:
        if not isinstance(exc, ValidationError):
            raise InvalidJobFile(f"not a valid job: {str(exc)[:200]}") from None
        parts = []
        for err in exc.errors()[:5]:
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            parts.append(f"{key}: {msg}")
        raise InvalidJobFile("not a valid job: " + "; ".join(parts)) from None


def encode_job(job: Job) -> bytes:
    try:
        return job.model_dump_json(indent=2).encode("utf-8") + b"\n"
    except (ValueError, UnicodeError) as exc:  # pydantic's serialization errors are ValueErrors
        raise InvalidJobFile(f"job {job.id} cannot be written as JSON: {str(exc)[:200]}") from None


def json_bytes(value: Any) -> bytes:
    """Plain JSON for side files (requests, heartbeats)."""
    return json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")

"""Bytes <-> Job, hardened against hostile input (no I/O).

JSON is parsed strictly: no NaN/Infinity, no duplicate keys, no numbers that
overflow, bounded nesting, UTF-8 only (a BOM is an error, not silently
skipped). Anything that fails here is "not a job" and belongs in corrupt/.

Values built in Python (params given to a submit) have no text to parse;
:func:`non_finite_at` applies the same no-NaN/Infinity rule to them, so a
submit refuses what would otherwise be written as ``null``.

A record is written one field per line, each value as compact JSON. Its size
then follows the size of its values: a value parsed from a capped file
writes back about as large as it was read, however deeply it nests
(indenting every level made 1 MB of nested params a record of 128 MB).
Given a limit, :func:`encode_job` refuses a record that would pass it before
building it: the values that can be large (params, result) are measured
first, without building anything, and the fields are built one by one only
while the total stays under the limit.

The last field of a record may be its seal (:mod:`jobspool.sealing`); it is
not part of the job and :func:`decode_job` sets it aside.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json

from jobspool import sealing
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
    if not isinstance(value.pop(sealing.FIELD, ""), str):
        raise InvalidJobFile(f"not a valid job: {sealing.FIELD}: must be a string")
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


# The values whose size no model field bounds: what a producer or a job gave.
_UNBOUNDED = ("params", "result")


def encode_job(job: Job, limit: int | None = None) -> bytes:
    """The record's bytes; InvalidJobFile if it cannot be JSON, or would pass limit."""
    try:
        if limit is not None:
            _refuse_large_values(job, limit)
        return _encode_fields(job, limit)
    except (ValueError, UnicodeError, RecursionError) as exc:  # pydantic's are ValueErrors
        raise InvalidJobFile(f"job {job.id} cannot be written as JSON: {str(exc)[:200]}") from None


def _over(job: Job, limit: int) -> InvalidJobFile:
    return InvalidJobFile(f"job {job.id} would be more than {limit} bytes; the cap is {limit}")


def _refuse_large_values(job: Job, limit: int) -> None:
    budget = limit
    for name in _UNBOUNDED:
        budget -= json_size_at_least(getattr(job, name), budget)
        if budget < 0:
            raise _over(job, limit)


# The fields a record is written with: the seal is not one (the spool seals
# the bytes it writes, after them).
_WRITTEN = tuple(name for name, field in Job.model_fields.items() if not field.exclude)


# Each written field's line starts with its name (built once: a submit's
# encoding is on the path measured against the disk's speed).
_PREFIXES = tuple((name, b'  "' + name.encode() + b'": ') for name in _WRITTEN)


def _encode_fields(job: Job, limit: int | None) -> bytes:
    # The unbounded values were measured before (_refuse_large_values), so
    # building all lines before comparing with the limit stays bounded.
    values = [
        prefix + to_json(getattr(job, name), inf_nan_mode="null") for name, prefix in _PREFIXES
    ]
    data = b"{\n" + b",\n".join(values) + b"\n}\n"
    if limit is not None and len(data) > limit:
        raise _over(job, limit)
    return data


_DONE = object()


def json_size_at_least(value: Any, limit: int) -> int:
    """A lower bound of the size of value as compact JSON, counted until it
    passes limit (then limit + 1). Iterative, with memory in the nesting depth
    only: nothing is built."""
    total = 0
    stack: list[Iterator[Any]] = [iter((value,))]
    while stack:
        item = next(stack[-1], _DONE)
        if item is _DONE:
            stack.pop()
            continue
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 1 + sum(len(k) + 4 if isinstance(k, str) else 5 for k in item)
            stack.append(iter(item.values()))
        elif isinstance(item, list | tuple):
            total += 1 + len(item)
            stack.append(iter(item))
        else:
            total += 1
        if total > limit:
            return limit + 1
    return total


def json_bytes(value: Any) -> bytes:
    """Plain JSON for side files (requests, heartbeats)."""
    return json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")

"""jobspool.codec: bytes <-> Job, strict against hostile input (pure)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from jobspool.codec import decode_job, encode_job, parse_json
from jobspool.errors import InvalidJobFile
from jobspool.model import Job

MINIMAL = b'{"job": "SampleJob", "method": "process", "params": ["p1", "p2"]}'


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "empty file", id="empty"),
        pytest.param(b"  \n\t ", "empty file", id="blank"),
        pytest.param(b"\xef\xbb\xbf" + MINIMAL, "byte order mark", id="bom"),
        pytest.param(b'{"a": "\xff"}', "not UTF-8", id="latin1"),
        pytest.param(b'{"a": NaN}', "NaN is not valid JSON", id="nan"),
        pytest.param(b'{"a": Infinity}', "Infinity is not valid JSON", id="infinity"),
        pytest.param(b'{"a": -Infinity}', "-Infinity is not valid JSON", id="minus-infinity"),
        pytest.param(b'{"a": 1e400}', "out of range", id="float-overflow"),
        pytest.param(b'{"a": ' + b"7" * 5000 + b"}", "not valid JSON", id="huge-int"),
        pytest.param(b'{"a": 1, "b": 2, "a": 3}', "duplicate key 'a'", id="duplicate"),
        pytest.param(b'{"a": {"x": 1, "x": 1}}', "duplicate key 'x'", id="nested-duplicate"),
        pytest.param(nested(65), "nested deeper than 64 levels", id="depth-65"),
        pytest.param(nested(200_000), "nested too deeply", id="depth-200000"),
        pytest.param(b'{"job": "SampleJob",', "not valid JSON", id="truncated"),
        pytest.param(b"{'job': 'SampleJob'}", "not valid JSON", id="single-quotes"),
    ],
)
def test_parse_json_refuses(data: bytes, message: str) -> None:
    with pytest.raises(InvalidJobFile, match=re.escape(message)):
        parse_json(data)


def test_parse_json_accepts_the_limits() -> None:
    assert parse_json(nested(64)) is not None
    assert parse_json(b'{"a": 1.5e300, "b": -0.0}') == {"a": 1.5e300, "b": -0.0}
    assert parse_json('{"é": "ü"}'.encode()) == {"é": "ü"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"[1, 2]", "must hold a JSON object, not list", id="list"),
        pytest.param(b'"job"', "must hold a JSON object, not str", id="string"),
        pytest.param(b"42", "must hold a JSON object, not int", id="number"),
        pytest.param(b"null", "must hold a JSON object, not NoneType", id="null"),
        pytest.param(b'{"method": "m"}', "job: Field required", id="missing-job"),
        pytest.param(
            b'{"job": "J", "method": "m", "runas": "root"}',
            "runas: unknown field",
            id="unknown-field",
        ),
        pytest.param(b'{"job": "J", "method": "m", "params": "p1"}', "params", id="params-string"),
        pytest.param(
            b'{"job": "J", "method": "m", "priority": "high"}', "priority", id="priority-text"
        ),
        pytest.param(b'{"job": "J", "method": "m", "version": 2}', "version", id="version"),
        pytest.param(
            b'{"job": "J", "method": "m", "max_attempts": 0}', "max_attempts", id="zero-attempts"
        ),
        pytest.param(
            b'{"job": "J", "method": "m", "attempts": [{"number": 1}]}',
            "attempts",
            id="bad-attempt",
        ),
    ],
)
def test_decode_job_refuses_what_is_not_a_job(data: bytes, message: str) -> None:
    with pytest.raises(InvalidJobFile, match=message):
        decode_job(data)


def test_decode_minimal_job_fills_defaults() -> None:
    job = decode_job(MINIMAL)
    assert (job.job, job.method, job.params) == ("SampleJob", "process", ["p1", "p2"])
    assert (job.id, job.version, job.priority, job.revision) == (None, 1, 0, 0)
    assert (job.attempts, job.history, job.result, job.error) == ([], [], None, None)
    assert decode_job(b'{"job": "J", "method": "m"}').params == []
    assert decode_job(b'{"job": "J", "method": "m", "params": {"k": 1}}').params == {"k": 1}


def test_naive_times_are_taken_as_utc() -> None:
    job = decode_job(b'{"job": "J", "method": "m", "not_before": "2026-05-01T12:00:00"}')
    assert job.not_before == datetime(2026, 5, 1, 12, tzinfo=UTC)
    job = decode_job(b'{"job": "J", "method": "m", "not_before": "2026-05-01T14:00:00+02:00"}')
    assert job.not_before == datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert job.not_before.tzinfo == UTC


def test_encode_then_decode_round_trips() -> None:
    job = Job(
        job="J",
        method="m",
        params={"text": "line\nbreak \u2603", "n": 10**30},
        id="abc",
        priority=-4,
        not_before=datetime(2026, 5, 1, tzinfo=UTC),
    )
    data = encode_job(job)
    assert data.endswith(b"\n")
    assert decode_job(data) == job
    assert json.loads(data)["params"]["n"] == 10**30

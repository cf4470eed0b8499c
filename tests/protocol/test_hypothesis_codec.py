"""Property tests of the job codec and of quarantine, on random and hostile bytes.

Properties, each with a bounded budget (a few hundred examples):
* decode_job on any bytes returns a Job or raises InvalidJobFile, nothing else;
* whatever decodes re-encodes, and the encoding decodes to an equal Job;
* a real Spool reading random files (as the runner does, or after a claim)
  either gets a Job or quarantines the file byte for byte, with a reason.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from jobspool.codec import decode_job, encode_job
from jobspool.errors import InvalidJobFile
from jobspool.fsops import NotRegularFile
from jobspool.model import Job
from jobspool.names import RunningName
from jobspool.spool import Spool

# No shrink phase: shrinking several distinct failures took minutes, and the
# raw failing example already shows the offending value.
BUDGET = settings(
    max_examples=300,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Strings a hostile writer would try: anything, plus lone surrogates (valid
# JSON escapes that no UTF-8 file can hold) and edge-of-range timestamps.
TEXT = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    st.sampled_from(
        [
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00+01:00",
            "2026-02-30T00:00:00",
            "2026-01-01T00:00:00Z",
            "2026-01-01",
            "",
            "\x00",
        ]
    ),
)
NUMBER = st.one_of(
    st.integers(),
    st.integers(min_value=10**300, max_value=10**320),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
VALUE: st.SearchStrategy[Any] = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
NAME = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True), TEXT)
FIELDS = (
    "id",
    "priority",
    "not_before",
    "max_attempts",
    "timeout_seconds",
    "created_at",
    "submitted_by",
    "original_name",
    "revision",
    "attempt_base",
    "next_attempt_at",
    "result",
    "reason",
    "version",
    "history",
    "attempts",
    "progress",
    "error",
)
JOB_DOC = st.fixed_dictionaries(
    {"job": NAME, "method": NAME},
    optional={
        "params": st.one_of(st.lists(VALUE, max_size=4), st.dictionaries(TEXT, VALUE, max_size=4)),
        **{f: VALUE for f in FIELDS},
        "history": st.lists(
            st.fixed_dictionaries({"at": TEXT, "action": TEXT}, optional={"by": TEXT}),
            max_size=2,
        ),
        "error": st.fixed_dictionaries({"type": TEXT, "message": TEXT}),
        "unknown": VALUE,
    },
)

# What an honest writer produces: identifiers, and params without NaN or
# surrogates (no strict UTF-8 JSON can hold those).
IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
CLEAN_VALUE: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
CLEAN_JOB = st.fixed_dictionaries(
    {"job": IDENT, "method": IDENT, "params": st.lists(CLEAN_VALUE, max_size=4)}
)


def to_bytes(value: Any) -> bytes:
    """JSON text for value, NaN/Infinity tokens included (as a careless writer would)."""
    return json.dumps(value, allow_nan=True).encode()


def decode_or_refuse(data: bytes) -> Job | None:
    """The job, or None when the codec refused it; anything else propagates."""
    try:
        return decode_job(data)
    except InvalidJobFile:
        return None


def assert_round_trip(job: Job) -> None:
    again = decode_job(encode_job(job))
    assert again == job


@BUDGET
@given(data=st.binary(max_size=300))
def test_random_bytes_decode_or_are_refused(data: bytes) -> None:
    job = decode_or_refuse(data)
    if job is not None:
        assert_round_trip(job)


@BUDGET
@given(value=VALUE, cut=st.integers(min_value=0, max_value=400))
def test_random_json_values_decode_or_are_refused(value: Any, cut: int) -> None:
    text = to_bytes(value)
    for data in (text, text[:cut]):
        job = decode_or_refuse(data)
        if job is not None:
            assert_round_trip(job)


@BUDGET
@given(doc=JOB_DOC)
def test_job_shaped_documents_round_trip_when_they_decode(doc: dict[str, Any]) -> None:
    job = decode_or_refuse(to_bytes(doc))
    if job is not None:
        assert_round_trip(job)


@BUDGET
@given(doc=CLEAN_JOB)
def test_plain_valid_jobs_always_decode_and_round_trip(doc: dict[str, Any]) -> None:
    data = json.dumps(doc, allow_nan=False, ensure_ascii=False).encode("utf-8")
    job = decode_job(data)
    assert (job.job, job.method, job.params) == (doc["job"], doc["method"], doc["params"])
    assert_round_trip(job)


# ---------------------------------------------------------------- spool


def _quarantined_ok(spool: Spool, path: Path, data: bytes, name: str) -> None:
    """Quarantine path and check corrupt/ holds it byte for byte with a reason."""
    kept = spool.quarantine(path, "not a job (property test)")
    assert kept.read_bytes() == data
    assert Path(f"{kept}.reason.txt").read_text().startswith("not a job")
    assert not os.path.lexists(path), name


GARBAGE = st.one_of(
    st.binary(max_size=200),
    VALUE.map(to_bytes),
    JOB_DOC.map(to_bytes),
    JOB_DOC.map(lambda d: to_bytes(d)[:-1]),
)


def test_a_spool_quarantines_random_files_it_reads_or_claims(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", durable=False, max_job_bytes=4096)
    numbers = itertools.count()

    @BUDGET
    @given(data=GARBAGE, claim=st.booleans())
    def check(data: bytes, claim: bool) -> None:
        n = next(numbers)
        name = f"job-{n}.json"
        path = spool.dir("pending") / name
        path.write_bytes(data)
        if claim:
            taken = spool.claim(name, RunningName(f"job-{n}", "prop", 1))
            assert taken is not None
            path = Path(taken)
        try:
            job = spool.read_job(path, single_link=True)
        except (InvalidJobFile, NotRegularFile):
            _quarantined_ok(spool, path, data, name)
            return
        assert_round_trip(job)
        os.unlink(path)

    check()
    # Everything read was either a job (removed above) or is in corrupt/.
    assert os.listdir(spool.dir("pending")) == []
    assert os.listdir(spool.dir("running")) == []
    assert os.listdir(spool.dir("tmp")) == []

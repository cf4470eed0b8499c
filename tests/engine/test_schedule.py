"""jobspool.schedule: the runner's in-memory order of pending jobs (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobspool.model import Attempt, Job, Outcome
from jobspool.schedule import Entry, Schedule

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0.timestamp() + 1000


def job(priority: int = 0, age: float = 0.0, **extra: object) -> Job:
    created = T0 + timedelta(seconds=1000 - age)
    return Job.model_validate(
        {"job": "J", "method": "m", "priority": priority, "created_at": created, **extra}
    )


def drain(s: Schedule, now: float = NOW) -> list[str]:
    out = []
    while (entry := s.take(now)) is not None:
        out.append(entry.name)
    return out


def test_priority_first_then_oldest_then_id() -> None:
    s = Schedule()
    s.add("low-old", "low-old", job(0, age=50))
    s.add("high-new", "high-new", job(9, age=1))
    s.add("mid", "mid", job(5, age=10))
    s.add("high-old", "high-old", job(9, age=30))
    s.add("neg", "neg", job(-1, age=99))
    s.add("low-new", "low-new", job(0, age=5))
    s.add("tie-b", "tie-b", job(0, age=20, id="b"))
    s.add("tie-a", "tie-a", job(0, age=20, id="a"))
    assert drain(s) == [
        "high-old",
        "high-new",
        "mid",
        "low-old",
        "tie-a",
        "tie-b",
        "low-new",
        "neg",
    ]
    assert len(s) == 0


def test_delayed_jobs_wait_until_due() -> None:
    s = Schedule()
    s.add("later", "later", job(9, not_before=T0 + timedelta(seconds=1010)))
    s.add("now", "now", job(0))
    assert s.next_due() == NOW + 10
    assert s.has_ready(NOW)
    assert drain(s, NOW) == ["now"]
    assert not s.has_ready(NOW + 9.9)
    assert s.take(NOW + 9.9) is None
    assert s.has_ready(NOW + 10)
    assert drain(s, NOW + 10) == ["later"]
    assert s.next_due() is None


def test_retry_time_and_not_before_the_later_one_wins() -> None:
    s = Schedule()
    s.add(
        "a",
        "a",
        job(not_before=T0 + timedelta(seconds=1005), next_attempt_at=T0 + timedelta(seconds=1020)),
    )
    s.add(
        "b",
        "b",
        job(not_before=T0 + timedelta(seconds=1030), next_attempt_at=T0 + timedelta(seconds=1001)),
    )
    assert drain(s, NOW + 19) == []
    assert drain(s, NOW + 20) == ["a"]
    assert drain(s, NOW + 30) == ["b"]


def test_a_due_delayed_job_is_ordered_by_priority_among_ready_ones() -> None:
    s = Schedule()
    s.add("plain", "plain", job(1, age=100))
    s.add("was-delayed", "was-delayed", job(5, not_before=T0 + timedelta(seconds=1001)))
    assert drain(s, NOW + 2) == ["was-delayed", "plain"]


def test_discard_and_replace_are_lazy_but_exact() -> None:
    s = Schedule()
    s.add("x", "x", job(1))
    s.add("y", "y", job(2))
    s.discard("y")
    assert "y" not in s
    assert s.names() == {"x"}
    # Re-adding a name replaces the old entry wherever it sat.
    s.add("x", "x", job(1, not_before=T0 + timedelta(seconds=2000)))
    assert not s.has_ready(NOW)
    assert s.take(NOW) is None
    assert s.next_due() == T0.timestamp() + 2000
    s.discard("x")
    assert s.next_due() is None
    assert len(s) == 0


def test_caps_skip_entries_without_losing_them() -> None:
    s = Schedule()
    s.add("export-1", "e1", job(9).model_copy(update={"job": "Export"}))
    s.add("export-2", "e2", job(8).model_copy(update={"job": "Export"}))
    s.add("sample", "s1", job(0))

    def no_exports(entry: Entry) -> bool:
        return entry.job != "Export"

    taken = s.take(NOW, no_exports)
    assert taken is not None and taken.name == "sample"
    assert s.take(NOW, no_exports) is None
    assert drain(s) == ["export-1", "export-2"]


def test_entry_carries_id_and_next_attempt_number() -> None:
    s = Schedule()
    attempts = [
        Attempt(number=1, runner="r", host="h", outcome=Outcome.FAILED),
        Attempt(number=2, runner="r", host="h", outcome=Outcome.HANDED_BACK),
    ]
    s.add("file.json", "the-id", job(attempts=attempts))
    entry = s.take(NOW)
    assert entry is not None
    assert (entry.name, entry.job_id, entry.job, entry.attempt) == ("file.json", "the-id", "J", 3)

"""The overview's figures in the Prometheus text exposition format (version 0.0.4).

Owns metric names, types and labels, which are part of the public interface
(documented in docs/DASHBOARD.md). Every figure comes from
:class:`jobspool.dashboard.overview.Overview`, so /metrics costs what the overview
costs and opens no job file.

``jobspool_attempts_total`` and the duration histogram are derived from the
job files on disk (within the index limit): they restart from the disk's
totals when the dashboard restarts, and dip when a person retries a failed
job (its old attempts move back to pending until it finishes again).
"""

from __future__ import annotations

from collections.abc import Iterable

from jobspool import ticks, unique
from jobspool.dashboard.holds import HoldsView
from jobspool.dashboard.overview import Overview
from jobspool.dashboard.state import Dashboard
from jobspool.model import utcnow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Iterable[tuple[str, str]] = ()) -> None:
        pairs = ",".join(f'{k}="{_label(v)}"' for k, v in labels)
        self.lines.append(f"{name}{{{pairs}}} {_num(value)}" if pairs else f"{name} {_num(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(ov: Overview, dash: Dashboard) -> str:
    w = _Writer()
    w.family("jobspool_jobs", "gauge", "Job files on disk per status.")
    for status, n in ov.counts.items():
        w.sample("jobspool_jobs", n, [("status", status)])
    w.family(
        "jobspool_scheduled_jobs",
        "gauge",
        "Pending jobs not due yet (delayed, or waiting for their next attempt).",
    )
    w.sample("jobspool_scheduled_jobs", ov.scheduled)
    w.family("jobspool_corrupt_files", "gauge", "Files quarantined in corrupt/.")
    w.sample("jobspool_corrupt_files", ov.corrupt)
    w.family(
        "jobspool_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest pending job that is due (0 when none is).",
    )
    w.sample("jobspool_oldest_pending_age_seconds", round(ov.oldest_pending_age or 0.0, 3))
    w.family("jobspool_runners", "gauge", "Runners with a heartbeat file, by liveness.")
    alive = sum(1 for r in ov.runners if not r.stale)
    w.sample("jobspool_runners", alive, [("state", "alive")])
    w.sample("jobspool_runners", len(ov.runners) - alive, [("state", "stale")])
    w.family(
        "jobspool_runner_heartbeat_age_seconds",
        "gauge",
        "Seconds since the dashboard saw each runner's heartbeat change.",
    )
    for r in ov.runners:
        w.sample(
            "jobspool_runner_heartbeat_age_seconds",
            round(r.heartbeat_age, 3),
            [("runner", r.runner), ("host", r.host)],
        )
    w.family("jobspool_running_attempts", "gauge", "Attempts running, as runners report.")
    w.sample("jobspool_running_attempts", ov.running_attempts)
    w.family(
        "jobspool_attempts_total",
        "counter",
        "Attempts recorded in finished jobs' files, by outcome.",
    )
    for outcome, n in sorted(ov.attempts.items()):
        w.sample("jobspool_attempts_total", n, [("outcome", outcome)])
    w.family(
        "jobspool_finished_jobs",
        "gauge",
        "Finished jobs on disk per job name and status (within the index limit).",
    )
    for s in ov.per_name:
        for status, n in (
            ("completed", s.completed),
            ("failed", s.failed),
            ("cancelled", s.cancelled),
        ):
            w.sample("jobspool_finished_jobs", n, [("job", s.name), ("status", status)])
    w.family(
        "jobspool_job_duration_seconds",
        "histogram",
        "Duration of the successful attempt of completed jobs, per job name.",
    )
    index = dash.index
    with index.lock:
        hists = {
            name: (h.cumulative(), h.count, h.total)
            for name, h in index.aggregates.durations.items()
        }
    for name in sorted(hists):
        edges, count, total = hists[name]
        if count <= 0:
            continue
        for upper, n in edges:
            w.sample(
                "jobspool_job_duration_seconds_bucket", n, [("job", name), ("le", repr(upper))]
            )
        w.sample("jobspool_job_duration_seconds_bucket", count, [("job", name), ("le", "+Inf")])
        w.sample("jobspool_job_duration_seconds_sum", round(total, 6), [("job", name)])
        w.sample("jobspool_job_duration_seconds_count", count, [("job", name)])
    w.family(
        "jobspool_dashboard_index_ready", "gauge", "1 when the dashboard has read every job file."
    )
    w.sample("jobspool_dashboard_index_ready", 1 if ov.index.ready else 0)
    w.family("jobspool_dashboard_index_rows", "gauge", "Job files the dashboard keeps as rows.")
    w.sample("jobspool_dashboard_index_rows", ov.index.rows)
    _retention(w, ov)
    _schedules(w, dash)
    _unique(w, dash)
    return w.text()


def _unique(w: _Writer, dash: Dashboard) -> None:
    """Lock files in unique/, counted from its listing (none is opened): a
    lock past its window counts until a runner's sweep removes it."""
    w.family("jobspool_unique_locks", "gauge", "Unique-key lock files in the spool's unique/.")
    w.sample("jobspool_unique_locks", unique.count(dash.spool))


def _schedules(w: _Writer, dash: Dashboard) -> None:
    found = ticks.views(dash.spool, dash.config.settings.schedules, utcnow())
    w.family(
        "jobspool_schedule_last_run_timestamp",
        "gauge",
        "Unix time of each schedule's newest tick claimed (absent before its first).",
    )
    for v in found:
        if v.last_tick is not None:
            w.sample(
                "jobspool_schedule_last_run_timestamp",
                v.last_tick.timestamp(),
                [("schedule", v.name)],
            )
    w.family(
        "jobspool_schedule_next_run_timestamp", "gauge", "Unix time of each schedule's next tick."
    )
    for v in found:
        if v.next_tick is not None:
            w.sample(
                "jobspool_schedule_next_run_timestamp",
                v.next_tick.timestamp(),
                [("schedule", v.name)],
            )


def _retention(w: _Writer, ov: Overview) -> None:
    """What purges removed (from the spool's purge summary) and the retention in force."""
    info = ov.retention
    if info is None:
        return
    w.family(
        "jobspool_purged_total",
        "counter",
        "Finished jobs removed (or archived) by retention and jobspool purge, per status.",
    )
    for status in sorted(info.policy):
        w.sample("jobspool_purged_total", info.total(status), [("status", status)])
    w.family(
        "jobspool_retention_seconds",
        "gauge",
        "How long finished jobs are kept, per status (absent: kept forever).",
    )
    for status, seconds in sorted(info.seconds.items()):
        if seconds is not None:
            w.sample("jobspool_retention_seconds", seconds, [("status", status)])
    if info.last_at is not None:
        w.family("jobspool_last_purge_timestamp_seconds", "gauge", "Unix time of the last purge.")
        w.sample("jobspool_last_purge_timestamp_seconds", round(info.last_at.timestamp(), 3))


def render_holds(view: HoldsView) -> str:
    """Pauses, spool-wide slots and rates (:mod:`jobspool.dashboard.holds`)."""
    w = _Writer()
    found = view.holds
    w.family("jobspool_spool_paused", "gauge", "1 while the whole spool is paused")
    w.sample("jobspool_spool_paused", 1 if found.pauses.spool_paused else 0)
    w.family("jobspool_paused", "gauge", "1 for each job name paused on its own")
    for name in found.pauses.names:
        w.sample("jobspool_paused", 1, [("job", name)])
    w.family("jobspool_slots_in_use", "gauge", "spool-wide slots taken, per job name")
    w.family("jobspool_slots_global", "gauge", "spool-wide concurrency cap, per job name")
    w.family("jobspool_rate_used", "gauge", "claims counted in the current rate window")
    w.family("jobspool_rate_limit", "gauge", "claims allowed per rate window")
    for lim in found.limits:
        job = [("job", lim.name)]
        if lim.slots_global is not None:
            w.sample("jobspool_slots_in_use", lim.slots_in_use or 0, job)
            w.sample("jobspool_slots_global", lim.slots_global, job)
        if lim.rate is not None:
            w.sample("jobspool_rate_used", lim.rate_used or 0, job)
            w.sample("jobspool_rate_limit", int(lim.rate.split("/")[0]), job)
    return w.text()

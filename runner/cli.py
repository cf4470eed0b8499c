"""The ``runjob`` writer and the ``jobspool`` commands.

Every command reads and acts through the spool module. A user mistake ends
with one clear line on stderr and exit status 2, never a traceback, and
writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jobspool import (
    actions,
    batch,
    heartbeats,
    holds,
    init_cli,
    initspool,
    pause_cli,
    progress,
    purge_cli,
    shown,
    sidefiles,
    steering,
    submit,
    timetext,
    unique_cli,
)
from jobspool.config import Config, load_config
from jobspool.errors import JobspoolError
from jobspool.heartbeats import Heartbeat
from jobspool.model import JobView, utcnow
from jobspool.names import default_actor
from jobspool.spool import Spool
from jobspool.states import Status

EXIT_USAGE = 2
TAIL_BYTES = 64 * 1024  # of a job's log, for `show`
LIST_TEXT = 60  # characters of an error message in a `list` line


class UsageError(JobspoolError):
    """Wrong arguments on the command line."""


def _add_location(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        help="allowed_jobs.yaml to use (default: the one here or in the nearest parent)",
    )
    p.add_argument("--spool", help="spool directory (overrides the config)")


def _version() -> str:
    """The installed distribution's version, for --version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jobspool")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _add_version(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="print the version"
    )


def clip(text: str, width: int) -> str:
    """text on one line, cut at a word boundary with an ellipsis past width."""
    flat = shown.printable(" ".join(text.split()))
    if len(flat) <= width:
        return flat
    cut = flat.rfind(" ", 0, width)
    head = flat[:cut] if cut > 0 else flat[: width - 1]
    return head.rstrip(" ,.;:") + "…"


def _config(args: argparse.Namespace, **extra: Any) -> Config:
    overrides = {"spool": args.spool, **extra}
    return load_config(args.config, overrides)


# ------------------------------------------------------------------ runjob


def parse_params(values: Sequence[str], json_text: str | None) -> list[Any] | dict[str, Any]:
    """Seed rules: one argument with commas is split; else one param per argument."""
    if json_text is not None:
        if values:
            raise UsageError("give params either as arguments or with --json, not both")
        return submit.params_from_json(json_text, "--json")
    if len(values) == 1 and "," in values[0]:
        return [v.strip() for v in values[0].split(",")]
    return list(values)


def _runjob_parser(prog: str = "runjob") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Queue a background job: runjob JOB METHOD [PARAMS ...], e.g. "
            "runjob SampleJob process p1 p2. Prints the job id."
        ),
    )
    _add_version(p)
    p.add_argument("job", nargs="?", help="job name from allowed_jobs.yaml")
    p.add_argument("method", nargs="?", help="method to call")
    p.add_argument("params", nargs="*", help='params; one argument "a,b,c" is split at commas')
    p.add_argument("--json", dest="json_params", help="params as JSON (list or object)")
    p.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    p.add_argument("--delay", type=float, help="seconds to wait before the first attempt")
    p.add_argument("--max-attempts", type=int, help="override the retry policy's attempts")
    p.add_argument("--timeout", type=float, help="seconds before the attempt is killed")
    p.add_argument("--id", dest="job_id", help="use this job id (must be unique)")
    p.add_argument("--check", action="store_true", help="validate only; write nothing")
    p.add_argument(
        "--batch",
        metavar="FILE",
        help="queue every job of FILE (- for stdin), one JSON object per line with the keys "
        "job, method, params, priority, delay, max_attempts, timeout, job_id: all are "
        "validated first and published with one flush; prints the ids in order",
    )
    unique_cli.add_submit_options(p)
    _add_location(p)
    return p


def cmd_submit(args: argparse.Namespace) -> int:
    if args.batch is not None:
        return _submit_batch(args)
    if not (args.job and args.method):
        raise UsageError(RUNJOB_NEEDS)
    cfg = _config(args)
    params = parse_params(args.params, args.json_params)
    if args.max_attempts is not None and args.max_attempts < 1:
        raise UsageError("--max-attempts must be at least 1")
    if args.check:
        submit.validate(cfg, args.job, args.method, params)
        print(f"ok: {args.job}.{args.method} accepts {json.dumps(params)}")
        return 0
    job_id = submit.run_background_job(
        args.job,
        args.method,
        params,
        priority=args.priority,
        delay=args.delay,
        max_attempts=args.max_attempts,
        timeout=args.timeout,
        job_id=args.job_id,
        config=cfg,
        via="cli",
        unique=unique_cli.asked(args),
    )
    unique_cli.say_existing(job_id)
    print(job_id)
    return 0


def _submit_batch(args: argparse.Namespace) -> int:
    given = [
        flag
        for flag, value in (
            ("JOB", args.job),
            ("--json", args.json_params),
            ("--id", args.job_id),
            ("--delay", args.delay),
            ("--timeout", args.timeout),
            ("--max-attempts", args.max_attempts),
        )
        if value is not None
    ]
    if given:
        raise UsageError(f"--batch takes each job's settings from its line, not {given[0]}")
    cfg = _config(args)
    source = "<stdin>" if args.batch == "-" else args.batch
    try:
        if args.batch == "-":
            lines = sys.stdin.read().splitlines()
        else:
            lines = Path(args.batch).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}") from None
    items, labels = batch.read_lines(lines, source)
    if args.check:
        for item, label in zip(items, labels, strict=True):
            batch.check_one(cfg, item, label)
        print(f"ok: {len(items)} jobs")
        return 0
    ids = batch.submit_labelled(cfg, items, labels, via="cli")
    for job_id in ids:
        print(job_id)
    return 0


RUNJOB_NEEDS = (
    "give the job's name and method: runjob JOB METHOD [PARAMS ...] "
    "(params are optional; e.g. runjob SampleJob process p1 p2); see runjob --help"
)


def runjob_main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        print(f"runjob: error: {RUNJOB_NEEDS}", file=sys.stderr)
        return EXIT_USAGE
    return _guard(lambda: cmd_submit(_runjob_parser().parse_args(args)), "runjob")


# ------------------------------------------------------------------ inspection


def _open(args: argparse.Namespace) -> Spool:
    return submit.open_spool(_config(args))


def _live_runners(beats: dict[str, Heartbeat]) -> list[dict[str, Any]]:
    return [
        {
            "runner": runner,
            "host": beat.host,
            "pid": beat.pid,
            "running": len(beat.jobs),
            "heartbeat": beat.wall.isoformat(),
        }
        for runner, beat in sorted(beats.items())
    ]


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _config(args)
    spool = submit.open_spool(cfg)
    counts = spool.counts()
    counts["corrupt"] = len(
        [n for n in spool.ops.scandir_names(spool.dir("corrupt")) if not n.endswith(".reason.txt")]
    )
    found = heartbeats.scan(spool)
    for runner, bad in sorted(found.malformed.items()):
        where = spool.dir("runners") / f"{runner}{heartbeats.SUFFIX}"
        print(f"jobspool: warning: {where}: {bad.reason}", file=sys.stderr)
    runners = _live_runners(found.beats)
    held = holds.gather(spool, cfg)
    if args.json:
        body = {"spool": str(spool.root), "counts": counts, "runners": runners}
        print(json.dumps(body | held.to_json(), indent=2))
        return 0
    print(f"config: {cfg.path}\nspool: {spool.root}")
    for status, n in counts.items():
        print(f"  {status:<10} {n}")
    print(f"runners: {len(runners)}")
    for r in runners:
        print(
            f"  {r['runner']}  pid {r['pid']}  running {r['running']}  heartbeat {r['heartbeat']}"
        )
    print("\n".join(holds.text_lines(held)))
    return 0


def _shown_status(view: JobView, now: datetime) -> str:
    """pending, or what a pending job that is not yet due waits for."""
    kind = view.record.waiting_kind(now) if view.status == Status.PENDING else None
    return kind or view.status


def _summary(view: JobView, now: datetime) -> str:
    rec = view.record
    due = rec.waiting_until(now) if view.status == Status.PENDING else None
    when = f"  due {timetext.local_and_relative(due, now)}" if due else ""
    err = f"  {clip(f'{rec.error.type}: {rec.error.message}', LIST_TEXT)}" if rec.error else ""
    return (
        f"{view.id:<36} {_shown_status(view, now):<10} {rec.job}.{rec.method:<16} "
        f"attempts={rec.attempts_used}{when}{err}"
    )


def cmd_list(args: argparse.Namespace) -> int:
    now = utcnow()
    views = steering.jobs_in(_open(args), steering.parse_status(args.status), args.limit, now)
    if args.json:
        print(json.dumps([v.to_public() for v in views], indent=2))
    else:
        for view in views:
            print(_summary(view, now))
    return 0


def _tail(path: Path, lines: int) -> str:
    """The last lines of a job's log: its last 64 KB at most, never through a
    link, a second name or a FIFO (job code can put those there)."""
    data = sidefiles.read_tail(path, TAIL_BYTES)
    if data is None:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def cmd_show(args: argparse.Namespace) -> int:
    spool = _open(args)
    view = spool.get(args.job_id)
    log = _tail(spool.job_log_path(view.id), args.log_lines)
    if args.json:
        data = view.to_public()
        data["log_tail"] = log
        data["live_progress"] = (
            p.model_dump(mode="json") if (p := progress.read_progress(spool, view.id)) else None
        )
        data["unique_lock_held"] = unique_cli.holds_lock(spool, view)
        print(json.dumps(data, indent=2))
        return 0
    rec = view.record
    print(f"id:        {view.id}\nstatus:    {view.status}\njob:       {rec.job}.{rec.method}")
    print(f"params:    {json.dumps(rec.params)}\npriority:  {rec.priority}")
    if (line := unique_cli.show_line(spool, view)) is not None:
        print(line)
    now = utcnow()
    if rec.created_at:
        print(f"created:   {timetext.local_and_relative(rec.created_at, now)}")
    if view.status == Status.PENDING and (due := rec.waiting_until(now)):
        print(f"due:       {timetext.local_and_relative(due, now)}  ({_shown_status(view, now)})")
    for label, value in _record_fields(view, now):
        print(f"{label + ':':<10} {value}")
    for a in rec.attempts:
        err = shown.printable(f" {a.error.type}: {a.error.message}") if a.error else ""
        print(
            f"attempt {a.number}: {a.outcome.value} on {a.runner} pid {a.pid} "
            f"{a.duration_seconds or 0:.3f}s{err}"
        )
    for h in rec.history:
        entry = f"{h.at} {h.action} by {h.by or '-'} via {h.via or '-'}"
        print(f"history:   {shown.printable(entry)}")
    if log:
        # What the job printed, shown safely: escapes cannot reach the terminal.
        print("log tail:\n" + shown.printable_lines(log))
    return 0


def _record_fields(view: JobView, now: datetime) -> list[tuple[str, str]]:
    """What else the record holds, as `show` prints it: only what is set."""
    rec = view.record
    times = {"not_before": rec.not_before, "next_attempt_at": rec.next_attempt_at}
    fields: list[tuple[str, object]] = [
        ("submitted_by", rec.submitted_by),
        *((k, timetext.local_and_relative(t, now) if t else None) for k, t in times.items()),
        ("max_attempts", rec.max_attempts),
        ("timeout_seconds", rec.timeout_seconds),
        ("original_name", rec.original_name),
        ("reason", rec.reason),
        ("error", f"{rec.error.type}: {rec.error.message}" if rec.error else None),
        ("progress", rec.progress.model_dump_json() if rec.progress else None),
    ]
    if view.status == Status.COMPLETED:
        fields.append(("result", json.dumps(rec.result)))
    return [(label, shown.printable(str(value))) for label, value in fields if value is not None]


def cmd_cancel(args: argparse.Namespace) -> int:
    outcome = actions.cancel(_open(args), args.job_id, by=default_actor(), via="cli")
    if outcome == "cancelled":
        print(f"{args.job_id}: cancelled")
    else:
        print(f"{args.job_id}: running; cancel requested from its runner")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    view = actions.retry(_open(args), args.job_id, by=default_actor(), via="cli")
    print(f"{view.id}: back in pending")
    return 0


# ------------------------------------------------------------------ spool set-up


def _add_spool_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("spool_dir", nargs="?", metavar="SPOOL", help="spool directory")
    _add_location(p)


def _target_config(args: argparse.Namespace) -> Config:
    """The config, with SPOOL (relative to the working directory) as its spool."""
    if args.spool_dir and args.spool:
        raise UsageError("give the spool either as SPOOL or with --spool, not both")
    given = args.spool_dir or args.spool
    spool = str(Path(given).absolute()) if given else None
    return load_config(args.config, {"spool": spool}, required=False)


def cmd_check(args: argparse.Namespace) -> int:
    """Import every allowed class, look up its methods, print their signatures."""
    from jobspool import checks

    cfg = _config(args)
    report = checks.check_allow_list(cfg)
    print(f"config: {cfg.path}\nspool: {cfg.spool_dir}")
    for job in report.jobs:
        print(f"{job.name} ({job.class_path})")
        for method, signature in job.methods.items():
            print(f"  {method}{signature}")
    for problem in report.errors:
        print(f"jobspool: error: {cfg.path}: {problem}", file=sys.stderr)
    methods = sum(len(job.methods) for job in report.jobs)
    if report.errors:
        print(f"{len(report.errors)} problem(s) in {cfg.path}", file=sys.stderr)
        return 1
    print(f"ok: {len(report.jobs)} jobs, {methods} methods")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from jobspool import doctor

    report = doctor.examine(_target_config(args))
    print(report.header)
    for check in report.checks:
        print(check.line())
    print(report.summary())
    return 1 if report.failed else 0


# ------------------------------------------------------------------ runner


def cmd_runner(args: argparse.Namespace) -> int:
    from jobspool.daemon import Runner

    overrides = {
        "spool": args.spool,
        "workers": args.workers,
        "poll_seconds": args.poll,
        "lease_seconds": args.lease_seconds,
        "heartbeat_seconds": args.heartbeat_seconds,
    }
    cfg = load_config(args.config, overrides)
    if args.config is not None:
        _init_named_project_spool(cfg)
    runner = Runner(
        cfg, burst=args.burst, watch=not args.no_watch, overrides=overrides, console=not args.quiet
    )
    if not args.quiet:
        print(
            f"jobspool runner {runner.runner_id}: config {cfg.path}, spool {cfg.spool_dir} "
            f"({cfg.settings.workers} workers)",
            file=sys.stderr,
        )
    return runner.run()


def _init_named_project_spool(cfg: Config) -> None:
    """A runner started on an explicit config makes that project's spool
    when it does not exist at all (the rule of ``jobspool up``: inside the
    config's directory, so never an unmounted mount point)."""
    options = {"log_dir": cfg.log_dir, "durable": cfg.settings.durable}
    if initspool.init_fresh_project_spool(cfg.spool_dir, cfg.path, **options):
        print(
            f"jobspool: spool {cfg.spool_dir} did not exist; initialised it (jobspool init)",
            file=sys.stderr,
        )


def _runner_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, help="attempts run at once")
    p.add_argument("--burst", action="store_true", help="exit when nothing is due or running")
    p.add_argument("--poll", type=float, help="seconds between full rescans of the spool")
    p.add_argument(
        "--no-watch",
        action="store_true",
        help="no filesystem events; rescan only (network filesystems)",
    )
    p.add_argument("--lease-seconds", type=float, help="silence after which a runner is dead")
    p.add_argument("--heartbeat-seconds", type=float, help="how often to refresh the heartbeat")
    p.add_argument("--quiet", action="store_true", help="no log lines on stderr")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jobspool", description="Background jobs in a directory.")
    _add_version(p)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser(
        "runner",
        help="run the runner daemon",
        description="Run jobs from the spool until stopped (SIGTERM hands running jobs back).",
    )
    _add_location(r)
    _runner_flags(r)
    r.set_defaults(func=cmd_runner)

    s = sub.add_parser(
        "submit",
        help="queue a job (same as runjob)",
        description="Queue a background job: jobspool submit JOB METHOD [PARAMS ...]. "
        "Prints the job id.",
        add_help=False,
        parents=[_runjob_parser("jobspool submit")],
    )
    s.set_defaults(func=cmd_submit)

    st = sub.add_parser(
        "status",
        help="counts per status and live runners",
        description="How many jobs each status holds, and the runners whose heartbeat is live.",
    )
    _add_location(st)
    st.add_argument("--json", action="store_true", help="print it as one JSON object")
    st.set_defaults(func=cmd_status)

    ls = sub.add_parser(
        "list",
        help="list jobs",
        description="One line per job: pending in the order they will run, then the others "
        "newest first. Long error messages are cut.",
    )
    _add_location(ls)
    ls.add_argument(
        "--status",
        choices=[*(s.value for s in Status), steering.SCHEDULED],
        help="only jobs in this status; scheduled: pending jobs not yet due (delayed or "
        "waiting to retry), soonest first",
    )
    ls.add_argument("--limit", type=int, default=50, help="at most this many jobs (default 50)")
    ls.add_argument("--json", action="store_true", help="print full records as a JSON list")
    ls.set_defaults(func=cmd_list)

    sh = sub.add_parser(
        "show",
        help="one job: record, attempts, errors, log tail",
        description="Everything the job's record holds, its attempts and history, "
        "and the end of its log.",
    )
    _add_location(sh)
    sh.add_argument("job_id", help="the job's id (as runjob printed it)")
    sh.add_argument("--json", action="store_true", help="print the record as JSON")
    sh.add_argument(
        "--log-lines", type=int, default=20, help="lines of the job's log to show (default 20)"
    )
    sh.set_defaults(func=cmd_show)

    c = sub.add_parser(
        "cancel",
        help="cancel a pending or running job",
        description="Cancel a pending job at once; a running one is stopped by its runner.",
    )
    _add_location(c)
    c.add_argument("job_id", help="the job's id")
    c.set_defaults(func=cmd_cancel)

    rt = sub.add_parser(
        "retry",
        help="send a failed or cancelled job back to pending",
        description="Send a failed or cancelled job back to pending with fresh attempts.",
    )
    _add_location(rt)
    rt.add_argument("job_id", help="the job's id")
    rt.set_defaults(func=cmd_retry)

    init_cli.register(sub)

    doc = sub.add_parser(
        "doctor",
        help="check what the spool relies on, on this mount",
        description="Probe what the spool relies on, on its mount: one verdict per line; "
        "exit status 1 if any check failed.",
    )
    _add_spool_target(doc)
    doc.set_defaults(func=cmd_doctor)

    chk = sub.add_parser(
        "check", help="import every allowed class, check its methods, print their signatures"
    )
    _add_location(chk)
    chk.set_defaults(func=cmd_check)

    purge_cli.register(sub)
    unique_cli.register(sub)
    pause_cli.register(sub)
    from jobspool import schedules_cli  # its own module: schedules and schedules run

    schedules_cli.register(sub)
    _add_plugin_commands(sub)  # jobspool dashboard, jobspool up
    return p


def _add_plugin_commands(sub: Any) -> None:
    """Commands other packages register (entry point group ``jobspool.commands``).

    The engine never imports the dashboard: the dashboard depends on the
    engine, and adds its commands through this group.
    """
    from importlib.metadata import entry_points

    for point in sorted(entry_points(group="jobspool.commands"), key=lambda p: p.name):
        register = point.load()
        register(sub)


def runner_argv(config: str | Path, *args: str) -> list[str]:
    """The command line that starts a runner on config (for scripts and tests)."""
    return [sys.executable, "-m", "jobspool.cli", "runner", "--config", str(config), *args]


def _guard(action: Callable[[], int], prog: str) -> int:
    try:
        return action()
    except JobspoolError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return _guard(lambda: func(args), "jobspool")


if __name__ == "__main__":
    sys.exit(main())

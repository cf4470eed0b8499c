"""`jobspool init`, the spool's marker, the threat model's modes and `jobspool doctor`.

Every refusal is checked through the real programs (runner, dashboard, up,
runjob) on a directory that stands in for an unmounted mount point: an empty
directory, or no directory at all. Nothing may be created there.
"""

from __future__ import annotations

import grp
import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jobspool.errors import JobspoolError
from jobspool.sentinel import MARKER
from jobspool.spool import DIRS
from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv, wait_until
from tests.support.hosts import bind_mount
from tests.support.juicefs import two_hosts
from tests.support.spoolkit import assert_one_line_error, config, log_text

NO_MARKER = "is not a jobspool spool (no marker): run `jobspool init --spool "
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/")
CHECKS = (
    "marker",
    "layout",
    "modes",
    "user",
    "rename",
    "link",
    "exclusive create",
    "watch",
    "clock",
    "fsync",
    "space",
    "inodes",
)


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _checks(out: str) -> dict[str, list[str]]:
    """Doctor's verdicts by check name: {"modes": ["FAIL", ...]}."""
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        match = re.match(r"^(OK|WARN|FAIL) +([a-z ]+): ", line)
        if match:
            found.setdefault(match.group(2), []).append(match.group(1))
    return found


def _refused_no_marker(out: subprocess.CompletedProcess[str], prog: str, where: Path) -> None:
    assert_one_line_error(out, prog, f"{where} {NO_MARKER}{where}`")
    assert "check that the filesystem is mounted" in out.stderr


# ---------------------------------------------------------------- init


def test_init_makes_a_spool_once_and_is_repeatable(env: SpoolEnv) -> None:
    out = env.cli("init", "--spool", "fresh")
    assert out.returncode == 0, out.stderr
    root = env.root / "fresh"
    assert out.stdout == f"spool {root}: initialised (format 1)\n"
    marker = root / MARKER
    doc = json.loads(marker.read_text())
    assert doc["format"] == 1 and doc["created_at"].endswith("Z")
    for name in (*DIRS, "logs", "logs/jobs"):
        assert (root / name).is_dir(), name
    assert os.listdir(root / "tmp") == []  # the marker's tmp name is gone

    before = marker.read_bytes()
    (root / "running").rmdir()
    again = env.cli("init", "--config", str(env.config), "--spool", str(root))
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"spool {root}: already initialised; layout checked (format 1)\n"
    assert marker.read_bytes() == before
    assert (root / "running").is_dir()


def test_init_with_a_group_gives_producers_tmp_and_pending_only(env: SpoolEnv) -> None:
    group = grp.getgrgid(os.getgid())
    out = env.cli("init", "--spool", "shared", "--group", group.gr_name)
    assert out.returncode == 0, out.stderr
    assert f"2770 for group {group.gr_name}" in out.stdout
    root = env.root / "shared"
    for name in ("tmp", "pending"):
        assert _mode(root / name) == 0o2770, name
    for name in ("", "running", "completed", "failed", "cancelled", "corrupt", "control"):
        assert _mode(root / name) == 0o750, name
    for name in ("runners", "logs", "logs/jobs"):
        assert _mode(root / name) == 0o750, name
    assert {os.lstat(p).st_gid for p in [root, *root.rglob("*")] if p.is_dir()} == {group.gr_gid}
    assert _mode(root / MARKER) == 0o644

    doctor = env.cli("doctor", str(root))
    assert doctor.returncode == 0, doctor.stdout
    assert _checks(doctor.stdout)["modes"] == ["OK"], doctor.stdout


def test_init_refuses_an_unknown_group_and_creates_nothing(env: SpoolEnv) -> None:
    out = env.cli("init", "--spool", "nowhere", "--group", "no-such-group-js")
    assert_one_line_error(out, "jobspool", "there is no group named 'no-such-group-js'")
    assert not (env.root / "nowhere").exists()


def test_init_refuses_a_newer_format_and_keeps_its_marker(env: SpoolEnv) -> None:
    marker = env.spool / MARKER
    marker.write_text('{"format": 2}\n')
    out = env.cli("init", "--spool", str(env.spool))
    assert_one_line_error(out, "jobspool", "has spool format 2; this jobspool knows format 1")
    assert marker.read_text() == '{"format": 2}\n'


# ---------------------------------------------------------------- refusals


def test_runner_refuses_an_empty_mount_point_and_a_missing_path(env: SpoolEnv) -> None:
    mount_point = env.root / "mnt"
    mount_point.mkdir()
    cfg = str(env.config)
    out = env.cli("runner", "--config", cfg, "--spool", str(mount_point), "--burst", "--quiet")
    _refused_no_marker(out, "jobspool", mount_point)
    assert os.listdir(mount_point) == []

    # Outside the config's directory, a missing path may be a mount point's
    # parent not mounted yet: refused, and nothing is made.
    elsewhere = env.root.parent / f"{env.root.name}-elsewhere"
    missing = elsewhere / "spool"
    out = env.cli("runner", "--config", cfg, "--spool", str(missing), "--burst", "--quiet")
    _refused_no_marker(out, "jobspool", missing)
    assert not elsewhere.exists()


def test_a_runner_on_an_explicit_config_makes_its_missing_project_spool(env: SpoolEnv) -> None:
    """As `jobspool up` does: a spool that does not exist at all, inside the
    config's directory, is initialised and said so; then the runner runs."""
    fresh = env.root / "fresh" / "spool"
    out = env.cli(
        "runner", "--config", str(env.config), "--spool", str(fresh), "--burst", "--quiet"
    )
    assert out.returncode == 0, out.stderr
    assert f"spool {fresh} did not exist; initialised it (jobspool init)" in out.stderr
    assert (fresh / MARKER).is_file()
    # A config found in the working directory, not named: nothing is made.
    env.config.write_text(env.config.read_text().replace("spool: spool", "spool: nope/spool"))
    found = env.cli("runner", "--burst", "--quiet")
    _refused_no_marker(found, "jobspool", env.root / "nope" / "spool")
    assert not (env.root / "nope").exists()


@pytest.mark.parametrize("command", ["dashboard", "up"])
def test_dashboard_and_up_refuse_an_empty_mount_point(env: SpoolEnv, command: str) -> None:
    mount_point = env.root / "mnt"
    mount_point.mkdir()
    out = env.cli(command, "--config", str(env.config), "--spool", str(mount_point), "--port", "0")
    _refused_no_marker(out, "jobspool", mount_point)
    assert os.listdir(mount_point) == []


def test_submitters_refuse_a_directory_without_marker(env: SpoolEnv) -> None:
    mount_point = env.root / "mnt"
    mount_point.mkdir()
    cfg = config(env)
    out = env.runjob("SampleJob", "process", "p1", "--config", str(env.config))
    assert out.returncode == 0, out.stderr  # the initialised spool takes it
    out = env.runjob(
        "SampleJob", "process", "p1", "--config", str(env.config), "--spool", str(mount_point)
    )
    _refused_no_marker(out, "runjob", mount_point)
    with pytest.raises(JobspoolError, match=re.escape(f"{mount_point} {NO_MARKER}")):
        run_background_job("SampleJob", "process", ["p1"], config=cfg, spool=str(mount_point))
    assert os.listdir(mount_point) == []


def test_runner_and_dashboard_refuse_a_newer_format(env: SpoolEnv) -> None:
    (env.spool / MARKER).write_text('{"format": 7, "created_at": "2031-01-01T00:00:00Z"}')
    before = _tree(env.spool)
    message = f"{env.spool} has spool format 7; this jobspool knows format 1 at most"
    assert_one_line_error(env.burst(), "jobspool", message)
    out = env.cli("dashboard", "--config", str(env.config), "--port", "0")
    assert_one_line_error(out, "jobspool", message)
    assert _tree(env.spool) == before


@pytest.mark.parametrize(
    ("content", "reason"),
    [("not json", "not JSON"), ("[1]", "not a JSON object"), ('{"format": "1"}', "no whole")],
)
def test_a_broken_marker_is_refused_with_its_reason(
    env: SpoolEnv, content: str, reason: str
) -> None:
    (env.spool / MARKER).write_text(content)
    out = env.cli("status", "--config", str(env.config))
    assert_one_line_error(out, "jobspool", f"{env.spool / MARKER} is not a valid spool marker")
    assert reason in out.stderr


# ---------------------------------------------------------------- up


@contextmanager
def _up(env: SpoolEnv, out: Path) -> Iterator[subprocess.Popen[bytes]]:
    cmd = [sys.executable, "-m", "jobspool.cli", "up", "--config", str(env.config)]
    with open(out, "wb") as stdout:
        proc = subprocess.Popen(
            [*cmd, "--port", "0", "--quiet"],
            cwd=env.root,
            env=env.environ(),
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)


def test_up_initialises_the_projects_own_spool_when_it_does_not_exist(
    env: SpoolEnv, tmp_path: Path
) -> None:
    env.settings["spool"] = "var/spool"  # a fresh project: nothing there yet
    env.config.write_text(json.dumps(env.settings))
    fresh = env.root / "var" / "spool"
    out = tmp_path / "up.out"
    with _up(env, out) as proc:

        def announced() -> bool:
            assert proc.poll() is None, out.read_text(errors="replace")
            return bool(URL.search(out.read_text(errors="replace")))

        wait_until(announced, 30, "`up` to print its URL")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, out.read_text(errors="replace")
    text = out.read_text(errors="replace")
    assert f"spool: {fresh} did not exist; initialised it (jobspool init)" in text
    assert json.loads((fresh / MARKER).read_text())["format"] == 1


# ---------------------------------------------------------------- the runner's warnings


def test_the_runner_warns_once_about_root_and_about_modes_that_let_others_write(
    env: SpoolEnv,
) -> None:
    assert env.burst().returncode == 0
    assert "spool_modes_unsafe" not in log_text(env)
    os.chmod(env.spool / "control", 0o777)
    assert env.burst().returncode == 0
    lines = log_text(env).splitlines()
    unsafe = [line for line in lines if " spool_modes_unsafe " in line]
    assert len(unsafe) == 1, lines
    assert " WARNING spool_modes_unsafe writable_by_others=control/ " in unsafe[0]
    as_root = [line for line in lines if " runner_as_root " in line]
    assert len(as_root) == (2 if os.geteuid() == 0 else 0), lines  # one per start


# ---------------------------------------------------------------- doctor


def test_doctor_passes_on_a_local_spool_and_leaves_nothing_behind(env: SpoolEnv) -> None:
    before = _tree(env.spool)
    out = env.cli("doctor", "--config", str(env.config))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith(f"jobspool doctor: {env.spool} (")
    verdicts = _checks(out.stdout)
    assert set(verdicts) == set(CHECKS), out.stdout
    assert not [v for vs in verdicts.values() for v in vs if v == "FAIL"], out.stdout
    assert out.stdout.splitlines()[-1].endswith(" 0 FAIL")
    for name in ("marker", "layout", "modes", "rename", "link", "exclusive create", "watch"):
        assert verdicts[name] == ["OK"], out.stdout
    assert verdicts["fsync"] in (["OK"], ["WARN"])  # WARN: a slow disk, still usable
    assert re.search(r"^(OK|WARN) +fsync: (\d+\.\d, ){4}\d+\.\d ms each", out.stdout, re.M)
    assert verdicts["user"] == (["WARN"] if os.geteuid() == 0 else ["OK"])
    assert _tree(env.spool) == before  # the probe directory is gone


def test_doctor_says_to_poll_where_notifications_see_only_this_mount(
    env: SpoolEnv, tmp_path: Path
) -> None:
    with bind_mount(env.spool, tmp_path / "mnt") as mount:
        out = env.cli("doctor", str(mount), "--config", str(env.config))
        assert out.returncode == 0, out.stdout
        assert f"jobspool doctor: {mount} (fuse" in out.stdout
        assert _checks(out.stdout)["watch"] == ["WARN"], out.stdout
        assert "jobs submitted elsewhere wait for the rescan" in out.stdout
        assert "every poll_seconds (0.5 s now; --poll 1 for a second)" in out.stdout
        assert os.listdir(mount / "tmp") == []


def test_doctor_fails_on_a_control_directory_anyone_can_write(env: SpoolEnv) -> None:
    os.chmod(env.spool / "control", 0o777)
    out = env.cli("doctor", str(env.spool))
    assert out.returncode == 1, out.stdout
    control = env.spool / "control"
    assert f"FAIL modes: any user can write control/ (mode 0777): chmod o-w,g-w {control}\n" in (
        out.stdout
    )
    assert out.stdout.rstrip().endswith("1 FAIL")


def test_doctor_fails_on_a_runner_directory_a_shared_group_can_write(env: SpoolEnv) -> None:
    other = next(g for g in grp.getgrall() if g.gr_gid != os.getgid())
    running = env.spool / "running"
    os.chown(running, -1, other.gr_gid)
    os.chmod(running, 0o770)
    out = env.cli("doctor", str(env.spool))
    assert out.returncode == 1, out.stdout
    assert f"FAIL modes: group {other.gr_name} can write running/ (mode 0770)" in out.stdout


def test_doctor_warns_when_a_producer_directory_loses_its_group(env: SpoolEnv) -> None:
    os.chmod(env.spool / "pending", 0o770)
    out = env.cli("doctor", str(env.spool))
    assert out.returncode == 0, out.stdout
    assert "WARN modes: pending/ is group-writable without setgid (mode 0770)" in out.stdout


def test_doctor_fails_on_a_directory_without_marker_and_writes_nothing(env: SpoolEnv) -> None:
    mount_point = env.root / "mnt"
    mount_point.mkdir()
    out = env.cli("doctor", str(mount_point), "--config", str(env.config))
    assert out.returncode == 1, out.stdout
    lines = out.stdout.splitlines()
    assert lines[1] == f"FAIL marker: {mount_point} {NO_MARKER}{mount_point}`, or check that " + (
        "the filesystem is mounted"
    )
    assert lines[-1] == "doctor: 0 OK, 0 WARN, 1 FAIL"
    assert os.listdir(mount_point) == []


def test_doctor_passes_on_each_host_of_a_juicefs_volume(env: SpoolEnv, tmp_path: Path) -> None:
    """A real distributed filesystem: every protocol check holds on both
    mounts, and the watch check says to rely on the rescan."""
    with two_hosts(tmp_path / "juicefs") as hosts:
        assert env.cli("init", "--spool", str(hosts.observer)).returncode == 0
        for mount in (hosts.a, hosts.b):
            out = env.cli("doctor", str(mount), "--config", str(env.config))
            assert out.returncode == 0, out.stdout + out.stderr
            assert f"jobspool doctor: {mount} (fuse" in out.stdout
            verdicts = _checks(out.stdout)
            for name in ("marker", "layout", "rename", "link", "exclusive create"):
                assert verdicts[name] == ["OK"], out.stdout
            assert verdicts["watch"] == ["WARN"], out.stdout
            assert "jobs submitted elsewhere wait for the rescan" in out.stdout
        wait_until(lambda: os.listdir(hosts.observer / "tmp") == [], 10, "doctor's probes to go")

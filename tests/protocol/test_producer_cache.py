"""A long-lived producer reuses its config and spool between submits, and
never submits with a stale one (jobspool.producer's invariants).

Each test submits from one process, changes something between two submits
(the file, the environment, the working directory, the mount under the
spool) and checks that the second submit sees the change.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobspool import producer
from jobspool.errors import JobspoolError, NotAllowed
from jobspool.initspool import init_spool
from jobspool.submit import run_background_job
from tests.support.hosts import bind_mount

ONE_JOB = """\
spool: {spool}
allowed_jobs:
  {name}:
    class: tests.support.testjobs.Typed
    allowed_methods: [add]
"""


def _project(folder: Path, name: str = "Adder", spool: str = "spool") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "allowed_jobs.yaml").write_text(ONE_JOB.format(name=name, spool=spool))
    init_spool((folder / spool).resolve())
    return folder


def _pending(spool: Path) -> list[str]:
    return sorted(os.listdir(spool / "pending"))


@pytest.fixture
def inside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project with no JOBSPOOL_* variables, as the working directory."""
    for var in [v for v in os.environ if v.startswith("JOBSPOOL_")]:
        monkeypatch.delenv(var)
    project = _project(tmp_path / "app")
    monkeypatch.chdir(project)
    yield project


def test_an_edited_config_is_seen_by_the_next_submit(inside: Path) -> None:
    first = run_background_job("Adder", "add", [1, 2])
    assert _pending(inside / "spool") == [f"{first}.json"]
    (inside / "allowed_jobs.yaml").write_text(ONE_JOB.format(name="Summer", spool="spool"))
    with pytest.raises(NotAllowed, match="'Adder' is not in the allow-list"):
        run_background_job("Adder", "add", [1, 2])
    run_background_job("Summer", "add", [1, 2])
    assert len(_pending(inside / "spool")) == 2


def test_a_changed_spool_setting_sends_the_next_job_there(
    inside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_background_job("Adder", "add", [1, 2])
    init_spool(inside / "other")
    monkeypatch.setenv("JOBSPOOL_SPOOL", "other")
    moved = run_background_job("Adder", "add", [3, 4])
    assert _pending(inside / "other") == [f"{moved}.json"]
    assert len(_pending(inside / "spool")) == 1


def test_a_nearer_config_wins_once_it_appears(
    inside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = inside / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    run_background_job("Adder", "add", [1, 2])  # found in the parent
    _project(sub, name="Nearer")
    with pytest.raises(NotAllowed):
        run_background_job("Adder", "add", [1, 2])
    job = run_background_job("Nearer", "add", [1, 2])
    assert _pending(sub / "spool") == [f"{job}.json"]


def test_a_removed_directory_is_made_again_and_the_job_lands(inside: Path) -> None:
    run_background_job("Adder", "add", [1, 2])
    shutil.rmtree(inside / "spool" / "tmp")
    job = run_background_job("Adder", "add", [3, 4])
    assert f"{job}.json" in _pending(inside / "spool")
    assert os.listdir(inside / "spool" / "tmp") == []


def test_an_unmounted_spool_is_refused_and_nothing_lands_on_the_mount_point(
    tmp_path: Path, inside: Path
) -> None:
    real = tmp_path / "real"
    init_spool(real)
    mount_point = inside / "mnt"
    (inside / "allowed_jobs.yaml").write_text(ONE_JOB.format(name="Adder", spool="mnt"))
    with bind_mount(real, mount_point):
        job = run_background_job("Adder", "add", [1, 2])  # cached with the mount's marker
        assert _pending(real) == [f"{job}.json"]
    assert os.listdir(mount_point) == []  # unmounted: an empty directory again
    for name in ("tmp", "pending"):  # as if someone made the layout by hand
        (mount_point / name).mkdir()
    with pytest.raises(JobspoolError, match="is not a jobspool spool"):
        run_background_job("Adder", "add", [3, 4])
    assert sorted(os.listdir(mount_point)) == ["pending", "tmp"]
    assert _pending(mount_point) == []
    assert _pending(real) == [f"{job}.json"]


def test_the_cache_holds_one_entry_per_config_and_spool(inside: Path) -> None:
    for n in range(20):
        run_background_job("Adder", "add", [n, n])
    cfg = producer.config(None, None)
    assert producer.config(None, None) is cfg  # reused, not reloaded
    assert producer.spool(cfg) is producer.spool(cfg)

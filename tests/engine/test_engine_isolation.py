"""The engine's own processes import the engine (whatever the working
directory holds), and the fork server imports little else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from jobspool import executor
from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv

DECOY = """
from pathlib import Path
Path(__file__).with_name("DECOY_IMPORTED").write_text("imported")
raise SystemExit(3)
"""


def test_a_project_with_its_own_runner_package_does_not_shadow_the_engine(
    env: SpoolEnv,
) -> None:
    # A project directory with a package of the same name as the engine's.
    decoy = env.root / "runner"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("")
    (decoy / "executor.py").write_text(DECOY)
    (decoy / "zygote.py").write_text(DECOY)
    (decoy / "child.py").write_text(DECOY)
    job_id = run_background_job("SampleJob", "process", ["p1"], config=str(env.config))
    # The installed console script, run from the project directory, as a user would.
    script = Path(sys.executable).with_name("jobspool")
    done = subprocess.run(
        [str(script), "runner", "--config", str(env.config), "--burst", "--quiet"],
        cwd=env.root,
        env=env.environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert env.record("completed", job_id)["job"] == "SampleJob"
    assert not (decoy / "DECOY_IMPORTED").exists(), "the fork server imported the project's runner"


# Modules that would each add hundreds of kilobytes to the fork server, and
# so to the cost of every fork and exit of it.
HEAVY = {"typing", "inspect", "dataclasses", "pathlib", "json", "re", "enum", "signal", "pydantic"}
FORK_SERVER_IMPORTS = """
import sys
from jobspool import binding, child, zygote
zygote._rehearse(1)
binding.plan(child.Rehearsal, "run")  # the warm-up of a job without params
print(" ".join(sorted(sys.modules)))
"""


def test_the_fork_server_stays_small() -> None:
    """What the fork server imports before its first fork, in a fresh
    interpreter started as the engine starts it."""
    done = subprocess.run(
        [sys.executable, "-P", "-c", FORK_SERVER_IMPORTS],
        env=executor._engine_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(done.stdout.split())
    assert "jobspool.zygote" in loaded
    assert loaded & HEAVY == set()

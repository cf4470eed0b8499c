"""allowed_jobs.yaml: strict loading, clear refusals, precedence, hot reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobspool.config import load_config
from jobspool.errors import ConfigError
from tests.conftest import SpoolEnv, wait_until
from tests.support.spoolkit import EXTRA_JOBS, job_doc, log_text, stop_clean

BAD_CONFIGS = [
    pytest.param("workers: 2\nbogus_key: 1\n", "bogus_key: unknown key", id="unknown-key"),
    pytest.param("workers: many\n", "workers: Input should be a valid integer", id="wrong-type"),
    pytest.param(
        "allowed_jobs:\n  SampleJob:\n    allowed_methods: [process]\n    colour: red\n",
        "allowed_jobs.SampleJob.colour: unknown key",
        id="nested-unknown-key",
    ),
    pytest.param(
        "retry:\n  max_attempts: 0\n",
        "retry.max_attempts: Input should be greater than or equal to 1",
        id="out-of-range",
    ),
    pytest.param(
        "allowed_jobs:\n  SampleJob:\n    class: 'os.system; rm'\n    allowed_methods: [process]\n",
        "allowed_jobs.SampleJob.class: String should match pattern",
        id="bad-class",
    ),
    pytest.param("workers: [1, 2\n", "not valid YAML", id="bad-yaml"),
    pytest.param("- just\n- a list\n", "the top level must be a mapping", id="not-a-mapping"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_runner_refuses_to_start_on_a_bad_config(env: SpoolEnv, text: str, message: str) -> None:
    before = sorted(env.spool.rglob("*"))  # the spool as `jobspool init` left it
    env.config.write_text(text)
    out = env.burst()
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert f"jobspool: error: {env.config}" in out.stderr
    assert message in out.stderr
    assert sorted(env.spool.rglob("*")) == before  # refused before touching anything


def test_runner_refuses_a_python_object_tag_and_runs_nothing(env: SpoolEnv, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    env.config.write_text(f'workers: !!python/object/apply:os.system ["touch {marker}"]\n')
    out = env.burst()
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert f"{env.config}: not valid YAML" in out.stderr
    assert "python/object" in out.stderr
    assert not marker.exists()


def test_runner_refuses_a_missing_config_file(env: SpoolEnv) -> None:
    missing = env.root / "nowhere.yaml"
    out = env.cli("runner", "--config", str(missing), "--burst", "--quiet")
    assert out.returncode == 2
    assert out.stderr == f"jobspool: error: {missing}: config file not found\n"
    out = env.runjob("SampleJob", "process", "a", "--config", str(missing))
    assert out.stderr == f"runjob: error: {missing}: config file not found\n"


def test_runjob_refuses_a_bad_config_too(env: SpoolEnv) -> None:
    env.config.write_text("workers: 2\nbogus_key: 1\n")
    out = env.runjob("SampleJob", "process", "a", "--config", str(env.config))
    assert out.returncode == 2
    assert out.stderr == f"runjob: error: {env.config}: bogus_key: unknown key\n"


def test_environment_then_flags_override_the_file(
    env: SpoolEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_config(env.config).settings.workers == 2
    monkeypatch.setenv("JOBSPOOL_WORKERS", "3")
    monkeypatch.setenv("JOBSPOOL_LEASE_SECONDS", "7.5")
    cfg = load_config(env.config)
    assert (cfg.settings.workers, cfg.settings.lease_seconds) == (3, 7.5)
    assert load_config(env.config, {"workers": 5}).settings.workers == 5
    monkeypatch.setenv("JOBSPOOL_WORKERS", "lots")
    with pytest.raises(ConfigError, match=r"workers: Input should be a valid integer"):
        load_config(env.config)


def test_paths_and_policies_resolve_from_the_file(env: SpoolEnv) -> None:
    cfg = load_config(env.config)
    assert cfg.spool_dir == env.spool.resolve()
    assert cfg.log_dir == env.spool.resolve() / "logs"
    flaky = cfg.retry_policy("Flaky")
    assert (flaky.max_attempts, flaky.delay_seconds, flaky.backoff, flaky.jitter) == (
        3,
        0.3,
        "exponential",
        0,
    )
    failing = cfg.retry_policy("Failing")
    assert (failing.max_attempts, failing.non_retryable) == (2, ["BadInput"])
    assert cfg.retry_policy("Marker").delay_seconds == 0.2  # global retry block
    assert cfg.class_path("ExportJob") == "jobs.ExportJob"
    assert cfg.timeout("Marker") == 30


def test_hot_reload_adds_a_job_to_the_allow_list(env: SpoolEnv, tmp_path: Path) -> None:
    runner = env.start_runner()
    wait_until(lambda: "runner_started" in log_text(env), 15, "the runner to start")
    marker = tmp_path / "marker"
    jobs = {**env.settings["allowed_jobs"], "Guarded": EXTRA_JOBS["Guarded"]}
    env.write_config(allowed_jobs=jobs)
    wait_until(lambda: "config_reloaded" in log_text(env), 10, "the config to be reloaded")
    out = env.runjob("Guarded", "touch", str(marker), "--config", str(env.config))
    assert out.returncode == 0, out.stderr
    rec = env.wait_status(out.stdout.strip(), "completed")
    assert rec["result"] == "touched"
    assert marker.read_text() == "touched"
    stop_clean(runner)


def test_a_broken_new_config_is_refused_and_the_old_one_stays(
    env: SpoolEnv, tmp_path: Path
) -> None:
    runner = env.start_runner()
    wait_until(lambda: "runner_started" in log_text(env), 15, "the runner to start")
    good = env.config.read_text()
    broken = good.replace("workers: 2", "workers: 2\nsurprise: true")
    assert broken != good
    env.config.write_text(broken)
    wait_until(
        lambda: "config_refused" in log_text(env, "background_jobs_errors.log"),
        10,
        "the broken config to be refused",
    )
    errors = log_text(env, "background_jobs_errors.log")
    assert "surprise: unknown key" in errors
    assert str(env.config) in errors
    # The old allow-list is still in force: Marker runs, an unknown job does not.
    marker = tmp_path / "marker"
    env.drop("ok.json", job_doc("Marker", "touch", [str(marker)]))
    env.drop("nope.json", job_doc("Guarded", "touch", [str(tmp_path / "nope")]))
    assert env.wait_status("ok", "completed")["result"] == "ran"
    assert env.wait_status("nope", "failed")["error"]["type"] == "NotAllowed"
    assert not (tmp_path / "nope").exists()
    assert "config_reloaded" not in log_text(env)
    stop_clean(runner)

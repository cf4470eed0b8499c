"""Configuration mistakes caught early: `jobspool check`, the runner's start-up
check, one-line config errors with "did you mean", and no silent defaults
when no allowed_jobs.yaml is found."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_JOBS, SpoolEnv, wait_until
from tests.support.spoolkit import assert_one_line_error, job_doc, log_text, stop_clean

MAIL_MODULE = """
print("printed while importing")


class SendEmail:
    label = "not a method"

    def send(self, to: str, subject: str = "hi") -> str:
        return to

    @property
    def outbox(self) -> int:
        return 0

    @staticmethod
    def ping() -> None:
        return None
"""


def _with_jobs(env: SpoolEnv, **jobs: Any) -> None:
    (env.root / "mailjobs.py").write_text(MAIL_MODULE)
    env.write_config(allowed_jobs={**TEST_JOBS, **jobs})


def _error_lines(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in out.stderr.splitlines() if line.startswith("jobspool: error: ")]


# ---------------------------------------------------------------- jobspool check


def test_check_prints_every_job_with_its_methods_signatures(env: SpoolEnv) -> None:
    out = env.cli("check", "--config", str(env.config))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    assert lines[0] == f"config: {env.config}"
    assert lines[1] == f"spool: {env.spool}"
    assert "Typed (tests.support.testjobs.Typed)" in lines
    assert "  add(a: int, b: int = 0) -> int" in lines
    assert "  greet(name: str, *, loud: bool = False) -> str" in lines
    assert "Marker (tests.support.testjobs.Marker)" in lines
    assert lines[-1] == f"ok: {len(TEST_JOBS)} jobs, 13 methods"


def test_check_names_the_file_the_key_and_the_fix_for_each_mistake(env: SpoolEnv) -> None:
    _with_jobs(
        env,
        Misspelt={"class": "mailjobs.SendEmial", "allowed_methods": ["send"]},
        Mailer={"class": "mailjobs.SendEmail", "allowed_methods": ["send", "sned", "outbox"]},
        Label={"class": "mailjobs.SendEmail", "allowed_methods": ["label"]},
        Nowhere={"class": "nosuchpackage.Job", "allowed_methods": ["run"]},
        Defaulted={"allowed_methods": ["run"]},
    )
    out = env.cli("check", "--config", str(env.config))
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    where = f"jobspool: error: {env.config}: allowed_jobs."
    assert _error_lines(out) == [
        f"{where}Misspelt.class: module mailjobs has no class SendEmial; did you mean SendEmail?",
        f"{where}Mailer.allowed_methods[1]: SendEmail has no method 'sned'; did you mean send?",
        f"{where}Mailer.allowed_methods[2]: SendEmail.outbox is a property, not a method; "
        "allow only plain methods (def, staticmethod, classmethod)",
        f"{where}Label.allowed_methods[0]: SendEmail.label is a str, not a method; "
        "allow only plain methods (def, staticmethod, classmethod)",
        f"{where}Nowhere.class: no module named 'nosuchpackage' (looked in the config's "
        "directory and PYTHONPATH); fix allowed_jobs.Nowhere.class",
        f"{where}Defaulted: module jobs has no class Defaulted; "
        "set allowed_jobs.Defaulted.class: module.Class (the default is jobs.Defaulted)",
    ]
    assert out.stderr.splitlines()[-1] == f"6 problem(s) in {env.config}"
    assert "  send(to: str, subject: str = 'hi') -> str" in out.stdout.splitlines()


def test_check_imports_from_the_configs_directory_not_the_working_one(env: SpoolEnv) -> None:
    _with_jobs(env, Mailer={"class": "mailjobs.SendEmail", "allowed_methods": ["send", "ping"]})
    below = env.root / "sub" / "dir"
    below.mkdir(parents=True)
    out = subprocess.run(
        [sys.executable, "-m", "jobspool.cli", "check"],  # found in a parent directory
        cwd=below,
        env=env.environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"config: {env.config}" in out.stdout.splitlines()
    assert "  ping() -> None" in out.stdout.splitlines()
    assert "printed while importing" not in out.stdout  # job code's output is not the report


def test_an_error_raised_while_importing_a_job_module_is_one_line(env: SpoolEnv) -> None:
    (env.root / "brokenjobs.py").write_text("import not_installed_anywhere\n")
    env.write_config(allowed_jobs={"Broken": {"class": "brokenjobs.X", "allowed_methods": ["a"]}})
    out = env.cli("check", "--config", str(env.config))
    assert out.returncode == 1
    assert _error_lines(out) == [
        f"jobspool: error: {env.config}: allowed_jobs.Broken.class: importing brokenjobs "
        "raised ModuleNotFoundError: No module named 'not_installed_anywhere'; "
        "fix brokenjobs (or what it imports) so that it imports"
    ]


# ---------------------------------------------------------------- the runner's start


def test_the_runner_refuses_to_start_on_a_missing_method(env: SpoolEnv) -> None:
    _with_jobs(env, Mailer={"class": "mailjobs.SendEmail", "allowed_methods": ["send", "sned"]})
    before = sorted(env.spool.rglob("*"))
    out = env.burst()
    assert_one_line_error(
        out,
        "jobspool",
        f"{env.config}: allowed_jobs.Mailer.allowed_methods[1]: "
        "SendEmail has no method 'sned'; did you mean send?",
    )
    assert sorted(env.spool.rglob("*")) == before  # refused before touching the spool


def test_the_runner_counts_the_other_problems_and_points_to_check(env: SpoolEnv) -> None:
    _with_jobs(
        env,
        Mailer={"class": "mailjobs.SendEmail", "allowed_methods": ["sned"]},
        Gone={"class": "mailjobs.Gone", "allowed_methods": ["run"]},
    )
    out = env.burst()
    assert_one_line_error(out, "jobspool", "(and 1 more: run jobspool check)")


def test_a_reload_that_breaks_keeps_the_old_config_and_logs_one_line(
    env: SpoolEnv, tmp_path: Path
) -> None:
    runner = env.start_runner()
    wait_until(lambda: "runner_started" in log_text(env), 15, "the runner to start")
    env.config.write_text(env.config.read_text() + "workers: [1, 2\n")
    wait_until(
        lambda: "config_refused" in log_text(env, "background_jobs_errors.log"),
        10,
        "the broken config to be refused",
    )
    refused = log_text(env, "background_jobs_errors.log")
    assert "not valid YAML at line" in refused
    assert "expected ',' or ']'" in refused
    marker = tmp_path / "marker"
    env.drop("ok.json", job_doc("Marker", "touch", [str(marker)]))
    assert env.wait_status("ok", "completed")["result"] == "ran"  # the old config runs it
    assert "config_reloaded" not in log_text(env)
    stop_clean(runner)


def test_a_reload_naming_a_missing_method_is_refused_until_it_is_fixed(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """A reload is held to the start's standard: the classes and methods it
    allows must exist. The old allow-list runs on meanwhile."""
    _with_jobs(env, Mailer={"class": "mailjobs.SendEmail", "allowed_methods": ["send"]})
    runner = env.start_runner()
    wait_until(lambda: "runner_started" in log_text(env), 15, "the runner to start")
    _with_jobs(env, Mailer={"class": "mailjobs.SendEmail", "allowed_methods": ["send", "sned"]})
    wait_until(
        lambda: "config_refused" in log_text(env, "background_jobs_errors.log"),
        20,
        "the reload naming a missing method to be refused",
    )
    refused = log_text(env, "background_jobs_errors.log")
    assert "allowed_jobs.Mailer.allowed_methods[1]: SendEmail has no method 'sned'" in refused
    marker = tmp_path / "marker"
    env.drop("ok.json", job_doc("Marker", "touch", [str(marker)]))
    assert env.wait_status("ok", "completed")["result"] == "ran"  # the old config runs it
    assert "config_reloaded" not in log_text(env)

    _with_jobs(env, Mailer={"class": "mailjobs.SendEmail", "allowed_methods": ["send", "ping"]})
    wait_until(lambda: "config_reloaded" in log_text(env), 20, "the fixed config to be adopted")
    stop_clean(runner)


# ---------------------------------------------------------------- config errors in one line


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "workers: 2\nretry:\n  max_attempts: [3\n",
            "not valid YAML at line 4, column 1: expected ',' or ']', but got '<stream end>'",
            id="yaml-syntax",
        ),
        pytest.param(
            "allowed_jobs:\n  SampleJob:\n    - process\n",
            "allowed_jobs.SampleJob: expected a mapping of settings "
            "(allowed_methods, timeout_seconds, ...), got a list",
            id="wrong-level",
        ),
        pytest.param(
            "allowed_jobs:\n  SampleJob:\n    alowed_methods: [process]\n",
            "allowed_jobs.SampleJob.alowed_methods: unknown key; did you mean allowed_methods? "
            "(and 1 more problem)",
            id="misspelt-key",
        ),
        pytest.param("wokers: 2\n", "wokers: unknown key; did you mean workers?", id="top-key"),
        pytest.param(
            "allowed_jobs:\n  SampleJob:\n    allowed_methods: [process]\n"
            "    concurrency: {globl: 3}\n",
            "allowed_jobs.SampleJob.concurrency.globl: unknown key; did you mean global?",
            id="misspelt-key-of-an-optional-setting",
        ),
        pytest.param(
            "allowed_jobs:\n  SampleJob:\n    allowed_methods: process\n",
            "allowed_jobs.SampleJob.allowed_methods: expected a list, got a string",
            id="not-a-list",
        ),
        pytest.param(
            "allowed_jobs:\n  SampleJob:\n    allowed_methods: [process, _secret]\n",
            "allowed_jobs.SampleJob.allowed_methods[1]: '_secret' is not a public method name",
            id="private-method",
        ),
        pytest.param(
            "allowed_jobs: [SampleJob]\n",
            "allowed_jobs: expected a mapping of job names to their settings, got a list",
            id="jobs-as-list",
        ),
    ],
)
def test_config_errors_are_one_line_naming_the_file_and_key(
    env: SpoolEnv, text: str, message: str
) -> None:
    env.config.write_text(text)
    out = env.cli("check", "--config", str(env.config))
    assert_one_line_error(out, "jobspool", f"{env.config}: {message}")


def test_a_misspelt_job_or_method_gets_a_did_you_mean_when_submitted(env: SpoolEnv) -> None:
    out = env.runjob("Markr", "touch", "x", "--config", str(env.config))
    assert_one_line_error(
        out, "runjob", "job 'Markr' is not in the allow-list; did you mean Marker?"
    )
    out = env.runjob("Marker", "tuoch", "x", "--config", str(env.config))
    assert_one_line_error(
        out,
        "runjob",
        "method 'tuoch' is not allowed for Marker (allowed: touch); did you mean touch?",
    )
    out = env.runjob("Zzzz", "touch", "x", "--config", str(env.config))
    assert out.stderr == "runjob: error: job 'Zzzz' is not in the allow-list\n"
    assert env.files("pending") == []


# ---------------------------------------------------------------- no silent defaults


def _clean_environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSPOOL_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


def _run_in(where: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *cmd],
        cwd=where,
        env=_clean_environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


COMMANDS = [
    pytest.param(("-m", "jobspool.cli", "runner", "--burst"), "jobspool", id="runner"),
    pytest.param(("-m", "jobspool.cli", "up", "--port", "0"), "jobspool", id="up"),
    pytest.param(("-m", "jobspool.cli", "dashboard", "--port", "0"), "jobspool", id="dashboard"),
    pytest.param(("-m", "jobspool.cli", "list"), "jobspool", id="list"),
    pytest.param(("-m", "jobspool.cli", "status"), "jobspool", id="status"),
    pytest.param(("-m", "jobspool.cli", "show", "some-id"), "jobspool", id="show"),
    pytest.param(("-m", "jobspool.cli", "check"), "jobspool", id="check"),
    pytest.param(("-m", "jobspool.runjob", "SampleJob", "process", "a"), "runjob", id="runjob"),
]


@pytest.mark.parametrize(("cmd", "prog"), COMMANDS)
def test_without_a_config_file_commands_stop_instead_of_using_defaults(
    tmp_path: Path, cmd: tuple[str, ...], prog: str
) -> None:
    assert not any((d / "allowed_jobs.yaml").exists() for d in (tmp_path, *tmp_path.parents))
    out = _run_in(tmp_path, *cmd)
    assert_one_line_error(
        out,
        prog,
        f"no allowed_jobs.yaml in {tmp_path} or its parents; "
        "pass --config FILE or set JOBSPOOL_CONFIG",
    )
    assert list(tmp_path.iterdir()) == []  # no spool made


def test_run_background_job_stops_too_without_a_config_file(tmp_path: Path) -> None:
    code = (
        "from jobspool import run_background_job\n"
        "from jobspool.errors import ConfigError\n"
        "try:\n"
        "    run_background_job('SampleJob', 'process', ['a'])\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    out = _run_in(tmp_path, "-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        f"no allowed_jobs.yaml in {tmp_path} or its parents; "
        "pass --config FILE or set JOBSPOOL_CONFIG\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_status_says_which_config_and_spool_it_uses(env: SpoolEnv) -> None:
    out = env.cli("status")  # found in the working directory
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == [f"config: {env.config}", f"spool: {env.spool}"]


def test_the_dashboard_says_which_config_and_spool_it_uses(env: SpoolEnv) -> None:
    out_path = env.root / "dashboard.out"
    with open(out_path, "wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobspool.cli", "dashboard", "--port", "0"],
            cwd=env.root,
            env=env.environ(),
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
        try:
            wanted = f"config: {env.config}, spool: {env.spool}"

            def announced() -> bool:
                assert proc.poll() is None, out_path.read_text(errors="replace")
                return wanted in out_path.read_text(errors="replace").splitlines()

            wait_until(announced, 30, "the dashboard to say what it uses")
        finally:
            proc.terminate()
            proc.wait(30)

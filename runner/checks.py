"""Whether the allow-list names classes and methods that exist (``jobspool check``).

Owns the checks that need the application's code: every allowed class is
imported as an attempt imports it (``binding.load_class``, the config's
directory first on ``sys.path``, in a fresh ``python -P`` process so that
neither the working directory nor the caller's imports change the answer,
and the job modules' import-time code never runs in a runner), and every
allowed method must be a plain public method (a function, a staticmethod or
a classmethod). Each problem is one line naming the key path
(``allowed_jobs.SendMail.allowed_methods[1]``), the problem and the fix, with
"did you mean X?" for a near miss. ``jobspool check`` prints the report; a
runner refuses to start on an allow-list with a problem.

The isolated process reads the allow-list as JSON on stdin and writes its
report as JSON on stdout (what job modules print at import goes to stderr).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from jobspool.config import Config, did_you_mean
from jobspool.errors import ConfigError

CHECK_TIMEOUT = 120.0


@dataclass
class JobReport:
    """One allowed job: its class path and each allowed method's signature."""

    name: str
    class_path: str
    methods: dict[str, str] = field(default_factory=dict)


@dataclass
class Report:
    jobs: list[JobReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "KEY: problem; fix"


# ------------------------------------------------------------ in the isolated process


def _class_names(module: Any) -> list[str]:
    return [n for n, v in vars(module).items() if isinstance(v, type) and not n.startswith("_")]


def _raw(cls: type, name: str) -> object:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _is_method(raw: object) -> bool:
    import types

    return isinstance(raw, types.FunctionType | staticmethod | classmethod)


def _public_methods(cls: type) -> list[str]:
    return [n for n in dir(cls) if not n.startswith("_") and _is_method(_raw(cls, n))]


def _import_problem(class_path: str, exc: BaseException, fix: str) -> str:
    module = class_path.rpartition(".")[0]
    missing = getattr(exc, "name", None)
    if isinstance(exc, ModuleNotFoundError) and missing and f"{module}.".startswith(f"{missing}."):
        looked = "looked in the config's directory and PYTHONPATH"
        return f"no module named {missing!r} ({looked}); {fix}"
    first = (str(exc).strip().splitlines() or [""])[0]
    return (
        f"importing {module} raised {type(exc).__name__}: {first}; "
        f"fix {module} (or what it imports) so that it imports"
    )


def _load(name: str, class_path: str, key: str) -> tuple[type | None, str | None]:
    """The class, or the one-line problem with its fix."""
    import importlib

    from jobspool.binding import load_class

    module_name, _, attr = class_path.rpartition(".")
    fix = (
        f"fix {key}"
        if key.endswith(".class")
        else f"set {key}.class: module.Class (the default is jobs.{name})"
    )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        return None, f"{key}: {_import_problem(class_path, exc, fix)}"
    if not isinstance(getattr(module, attr, None), type):
        hint = did_you_mean(attr, _class_names(module))
        return None, f"{key}: module {module_name} has no class {attr}{hint or f'; {fix}'}"
    try:
        return load_class(class_path), None
    except Exception as exc:
        return None, f"{key}: {exc}; {fix}"


def _method_problem(cls: type, method: str, key: str) -> str | None:
    raw = _raw(cls, method)
    if raw is None:
        public = _public_methods(cls)
        hint = did_you_mean(method, public)
        if not hint:
            known = ", ".join(public) or "none"
            hint = f"; remove it or add the method (public methods: {known})"
        return f"{key}: {cls.__name__} has no method {method!r}{hint}"
    if not _is_method(raw):
        return (
            f"{key}: {cls.__name__}.{method} is a {type(raw).__name__}, not a method; "
            "allow only plain methods (def, staticmethod, classmethod)"
        )
    return None


def _signature(cls: type, method: str) -> str:
    from jobspool.binding import plan

    try:
        return plan(cls, method).signature_text()
    except (TypeError, ValueError):
        return "(...)"


def _check_job(name: str, entry: dict[str, Any], report: Report) -> None:
    class_path: str = entry["class_path"]
    key = f"allowed_jobs.{name}" + (".class" if entry["class_given"] else "")
    job = JobReport(name, class_path)
    report.jobs.append(job)
    cls, problem = _load(name, class_path, key)
    if cls is None:
        report.errors.append(str(problem))
        return
    for at, method in enumerate(entry["methods"]):
        found = _method_problem(cls, method, f"allowed_jobs.{name}.allowed_methods[{at}]")
        if found:
            report.errors.append(found)
        else:
            job.methods[method] = _signature(cls, method)


def _check_schedule(name: str, entry: dict[str, Any], report: Report) -> None:
    """A schedule's params must bind to its method's signature."""
    from jobspool.binding import bind, load_class
    from jobspool.errors import InvalidParams

    try:
        cls = load_class(entry["class_path"])
        bind(cls, entry["method"], entry["params"])
    except InvalidParams as exc:
        shown = f"{entry['job']}.{entry['method']}{_signature(cls, entry['method'])}"
        report.errors.append(f"schedules.{name}.params: {exc}; give params that {shown} accepts")
    except Exception:  # noqa: S110 - the allowed_jobs entry's own check says what is wrong
        pass


def inspect_allow_list(request: dict[str, Any]) -> Report:
    """Import every allowed class and look up its methods, and bind each
    schedule's params (this process)."""
    base = request["base_dir"]
    if base not in sys.path:
        sys.path.insert(0, base)
    report = Report()
    with contextlib.redirect_stdout(sys.stderr):
        for name, entry in request["jobs"].items():
            _check_job(name, entry, report)
        for name, entry in request.get("schedules", {}).items():
            _check_schedule(name, entry, report)
    return report


def main() -> int:
    request = json.load(sys.stdin)
    report = inspect_allow_list(request)
    jobs = [{"name": j.name, "class_path": j.class_path, "methods": j.methods} for j in report.jobs]
    json.dump({"jobs": jobs, "errors": report.errors}, sys.stdout)
    return 0


# ------------------------------------------------------------ in the caller


def _request(cfg: Config) -> dict[str, Any]:
    jobs = {
        name: {
            "class_path": cfg.class_path(name),
            "class_given": spec.class_path is not None,
            "methods": spec.allowed_methods,
        }
        for name, spec in cfg.settings.allowed_jobs.items()
    }
    schedules = {
        name: {
            "job": entry.job,
            "method": entry.method,
            "params": entry.params,
            "class_path": cfg.class_path(entry.job),
        }
        for name, entry in cfg.settings.schedules.items()
    }
    return {"base_dir": str(cfg.base_dir), "jobs": jobs, "schedules": schedules}


def _source(cfg: Config) -> str:
    return str(cfg.path) if cfg.path else "settings"


class PendingCheck:
    """The checks running in their own process: started at once, their
    report collected when needed, so a runner does read-only work (the
    look at its backlog) while the allowed classes are imported."""

    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg
        self._proc: subprocess.Popen[str] | None = None
        if cfg.settings.allowed_jobs:  # else no schedule either: each names an allowed job
            self._proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "jobspool.checks"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

    def report(self) -> Report:
        """The process's report; ConfigError if it could not tell."""
        proc, cfg = self._proc, self._cfg
        if proc is None:
            return Report()
        try:
            out, err = proc.communicate(json.dumps(_request(cfg)), timeout=CHECK_TIMEOUT)
            data = json.loads(out)
        except subprocess.TimeoutExpired:
            raise ConfigError(
                f"{_source(cfg)}: importing the allowed classes took over {CHECK_TIMEOUT:g}s"
            ) from None
        except ValueError:
            last = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            raise ConfigError(
                f"{_source(cfg)}: cannot import the allowed classes: {last}"
            ) from None
        finally:
            self.close()
        jobs = [JobReport(j["name"], j["class_path"], j["methods"]) for j in data["jobs"]]
        return Report(jobs, list(data["errors"]))

    def require(self) -> None:
        """A runner's start-up check: ConfigError (one line) on the first problem."""
        errors = self.report().errors
        if errors:
            more = f" (and {len(errors) - 1} more: run jobspool check)" if len(errors) > 1 else ""
            raise ConfigError(f"{_source(self._cfg)}: {errors[0]}{more}")

    def close(self) -> None:
        """Stop the process if it still runs (its caller gave up first)."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.kill()
            proc.communicate()


def check_allow_list(cfg: Config) -> Report:
    """The report of a fresh ``python -P`` process; ConfigError if it could not tell."""
    return PendingCheck(cfg).report()


def require_valid_allow_list(cfg: Config) -> None:
    """A runner's start-up check: ConfigError (one line) on the first problem."""
    PendingCheck(cfg).require()


if __name__ == "__main__":
    sys.exit(main())

"""allowed_jobs.yaml + environment + flags -> :class:`Config`.

Owns the allow-list and every setting, the per-attempt ``limits`` included
(spool-wide, overridden per job; applied by ``jobspool.limits``) and each
job's ``isolation`` (``process``: one process per attempt; ``pool``:
long-lived pool workers, see ``jobspool.poolworker``; the entry's over the
spool-wide one). Limits need a process of their own, so a job under
configured limits runs one process per attempt: an entry that asks for
``pool`` with limits is refused, and a spool-wide ``pool`` leaves such jobs
per attempt (:meth:`Config.pooled`). The file
is read with ``yaml.safe_load`` (no tags that build Python objects) into pydantic models
that reject unknown keys; every error is one line naming the file, the key
(or the line and column of a YAML syntax error), the problem and, for a
near miss, the key meant ("did you mean ...?"). The file is found by
``--config``, ``JOBSPOOL_CONFIG`` or in the working directory or one of its
parents; with none of these, loading refuses rather than run on defaults.
Whether the allowed classes and methods exist is ``jobspool.checks``'s
business (it imports application code). Precedence, lowest first:
built-in defaults, the file, ``JOBSPOOL_*`` environment variables,
command-line flags. A job file can only name an
allow-list key; import paths come from this file alone.
"""

from __future__ import annotations

import difflib
import os
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from jobspool.claimgate import Rate, parse_rate
from jobspool.errors import ConfigError, NotAllowed
from jobspool.model import NAME_PATTERN
from jobspool.recurring import ScheduleSpec, check_name
from jobspool.retention import parse_age
from jobspool.states import Status
from jobspool.uniquekey import UniqueSpec

CONFIG_NAME = "allowed_jobs.yaml"
_DOTTED = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetryPolicy(_Strict):
    max_attempts: int = Field(default=3, ge=1, le=1000)
    delay_seconds: float = Field(default=60.0, ge=0)
    backoff: Literal["fixed", "exponential"] = "exponential"
    max_delay_seconds: float = Field(default=3600.0, ge=0)
    # A fraction of the delay added at random (0.1 = up to +10 %), so that a
    # burst of failures does not retry in lockstep.
    jitter: float = Field(default=0.1, ge=0, le=1)
    # Exception class names (bare or dotted) that fail at once.
    non_retryable: list[str] = Field(default_factory=list)


class RetryOverride(_Strict):
    max_attempts: int | None = Field(default=None, ge=1, le=1000)
    delay_seconds: float | None = Field(default=None, ge=0)
    backoff: Literal["fixed", "exponential"] | None = None
    max_delay_seconds: float | None = Field(default=None, ge=0)
    jitter: float | None = Field(default=None, ge=0, le=1)
    non_retryable: list[str] | None = None

    def apply(self, base: RetryPolicy) -> RetryPolicy:
        changes = {k: v for k, v in self.model_dump().items() if v is not None}
        return base.model_copy(update=changes)


class Limits(_Strict):
    """What one attempt may use (``jobspool.limits`` applies them); unset: no limit."""

    memory_mb: int | None = Field(default=None, ge=16, le=1 << 40)
    cpu_seconds: float | None = Field(default=None, gt=0, le=1e9)
    open_files: int | None = Field(default=None, ge=16, le=1 << 20)
    processes: int | None = Field(default=None, ge=1, le=1 << 22)
    output_bytes: int | None = Field(default=None, ge=1024, le=1 << 50)

    def over(self, base: Limits) -> Limits:
        """These limits where set, ``base`` elsewhere."""
        return base.model_copy(update=self.model_dump(exclude_none=True))


class Concurrency(_Strict):
    """``concurrency: {per_runner: 2, global: 5}``: attempts at once per runner
    and across every runner of the spool (``jobspool.slots``); unset: no cap."""

    per_runner: int | None = Field(default=None, ge=1)
    global_: int | None = Field(default=None, alias="global", ge=1, le=10_000)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _concurrency(value: object) -> object:
    """A plain number is the per-runner form."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"per_runner": value}
    return value


def _public_method_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name) or name.startswith("_"):
        raise ValueError(
            f"{name!r} is not a public method name; allow only methods whose names "
            "are letters, digits and _ and do not start with _"
        )
    return name


Isolation = Literal["process", "pool"]

_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "K": 1 << 10,
    "KB": 1 << 10,
    "M": 1 << 20,
    "MB": 1 << 20,
    "G": 1 << 30,
    "GB": 1 << 30,
}


def parse_size(value: object) -> object:
    """``512MB``, ``1GB``, ``65536`` (bytes): a size in bytes (units of 1024)."""
    if not isinstance(value, str):
        return value
    text = value.strip().upper().replace(" ", "").removesuffix("IB").removesuffix("I")
    digits = text.rstrip("KMGB")
    unit = text[len(digits) :]
    if not digits.isdigit() or unit not in _SIZE_UNITS:
        raise ValueError(f"{value!r} is not a size (e.g. 512MB, 2GB, 1048576)")
    return int(digits) * _SIZE_UNITS[unit]


class PoolSettings(_Strict):
    """Pool workers (``isolation: pool``) are replaced after this many
    attempts, or after an attempt that left them above this resident size,
    as Celery's worker_max_tasks_per_child and worker_max_memory_per_child."""

    max_attempts_per_worker: int = Field(default=1000, ge=1, le=1 << 30)
    max_worker_memory: Annotated[int, BeforeValidator(parse_size)] = Field(
        default=512 << 20, ge=1 << 20, le=1 << 50
    )


class JobSpec(_Strict):
    class_path: str | None = Field(default=None, alias="class", pattern=_DOTTED)
    allowed_methods: list[Annotated[str, AfterValidator(_public_method_name)]] = Field(min_length=1)
    timeout_seconds: float | None = Field(default=None, gt=0)
    retry: RetryOverride = Field(default_factory=RetryOverride)
    # A plain number is the per-runner cap; a mapping may add a global one.
    concurrency: Annotated[Concurrency | None, BeforeValidator(_concurrency)] = None
    # At most N claims per second, minute or hour across runners (jobspool.rates).
    rate: Annotated[Rate | None, BeforeValidator(parse_rate)] = None
    limits: Limits = Field(default_factory=Limits)
    isolation: Isolation | None = None  # None: the spool-wide setting
    description: str | None = None
    unique: UniqueSpec | None = None  # jobspool.uniquekey

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def per_runner_cap(self) -> int | None:
        return self.concurrency.per_runner if self.concurrency else None

    @property
    def global_cap(self) -> int | None:
        return self.concurrency.global_ if self.concurrency else None


class LogSettings(_Strict):
    dir: str | None = None  # default: <spool>/logs
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    backups: int = Field(default=5, ge=0)
    job_log_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)


class RetentionSettings(_Strict):
    """How long finished jobs are kept (``jobspool.retention``): an age such
    as 7d, 12h, 30m, or keep; with archive_dir, records and logs are moved
    there instead of deleted."""

    completed: Annotated[float | None, BeforeValidator(parse_age)] = 7 * 86400.0
    failed: Annotated[float | None, BeforeValidator(parse_age)] = 30 * 86400.0
    cancelled: Annotated[float | None, BeforeValidator(parse_age)] = 7 * 86400.0
    archive_dir: str | None = None
    check_seconds: float = Field(default=60.0, gt=0, le=86400)
    batch: int = Field(default=100, ge=1, le=10000)

    def policy(self) -> dict[Status, float | None]:
        return {
            Status.COMPLETED: self.completed,
            Status.FAILED: self.failed,
            Status.CANCELLED: self.cancelled,
        }


class Settings(_Strict):
    spool: str = "spool"
    workers: int = Field(default=4, ge=1, le=256)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_seconds: float = Field(default=600.0, gt=0)
    heartbeat_seconds: float = Field(default=2.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)
    poll_seconds: float = Field(default=2.0, gt=0)
    grace_seconds: float = Field(default=10.0, ge=0)
    max_job_bytes: int = Field(default=1024 * 1024, ge=256)
    durable: bool = True
    start_method: Literal["auto", "fork", "spawn"] = "auto"
    min_free_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    min_free_inodes: int = Field(default=256, ge=0)
    eager: bool = False
    # How long a unique lock whose job is in no status may be on its way
    # to publication before it is taken over (jobspool.unique).
    unique_grace_seconds: float = Field(default=30.0, ge=0, le=3600)
    logs: LogSettings = Field(default_factory=LogSettings)
    limits: Limits = Field(default_factory=Limits)
    isolation: Isolation = "process"
    pool: PoolSettings = Field(default_factory=PoolSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    allowed_jobs: dict[str, JobSpec] = Field(default_factory=dict)
    schedules: dict[str, ScheduleSpec] = Field(default_factory=dict)  # jobspool.recurring

    @field_validator("allowed_jobs")
    @classmethod
    def _job_names(cls, jobs: dict[str, JobSpec]) -> dict[str, JobSpec]:
        for name in jobs:
            if not NAME_PATTERN.fullmatch(name) or name.startswith("__"):
                raise ValueError(f"{name!r} is not a valid job name (letters, digits, _)")
        return jobs

    @field_validator("schedules")
    @classmethod
    def _schedule_names(cls, schedules: dict[str, ScheduleSpec]) -> dict[str, ScheduleSpec]:
        for name in schedules:
            check_name(name)
        return schedules


def _schedule_problem(settings: Settings) -> str | None:
    """A schedule that names a job or method the allow-list does not allow:
    its key path, the problem and the fix."""
    jobs = settings.allowed_jobs
    for name, entry in settings.schedules.items():
        spec = jobs.get(entry.job)
        if spec is None:
            hint = did_you_mean(entry.job, list(jobs)) or "; add it to allowed_jobs or fix the name"
            return f"schedules.{name}.job: {entry.job!r} is not in the allow-list{hint}"
        if entry.method not in spec.allowed_methods:
            allowed = ", ".join(spec.allowed_methods)
            fix = f"; add it to allowed_jobs.{entry.job}.allowed_methods"
            hint = did_you_mean(entry.method, spec.allowed_methods) or fix
            return (
                f"schedules.{name}.method: {entry.method!r} is not allowed for {entry.job} "
                f"(allowed: {allowed}){hint}"
            )
    return None


def _isolation_problem(settings: Settings) -> str | None:
    """``isolation: pool`` asked for where limits are set: the key path and why."""
    why = "per-attempt limits need a process per attempt (a live process cannot lift them)"
    spool_wide = settings.limits.model_dump(exclude_none=True)
    if settings.isolation == "pool" and spool_wide:
        return f"isolation: pool cannot hold limits ({', '.join(spool_wide)}): {why}"
    for name, spec in settings.allowed_jobs.items():
        own = spec.limits.over(settings.limits).model_dump(exclude_none=True)
        if spec.isolation == "pool" and own:
            return (
                f"allowed_jobs.{name}.isolation: pool cannot hold limits "
                f"({', '.join(own)}): {why}; remove one of them"
            )
    return None


@dataclass(frozen=True)
class Config:
    """Settings plus where they came from; paths are resolved and absolute."""

    settings: Settings
    path: Path | None
    # Derived once per job name; a reloaded file makes a new Config.
    _policies: dict[str, RetryPolicy] = field(default_factory=dict, compare=False, repr=False)
    _limits: dict[str, dict[str, float]] = field(default_factory=dict, compare=False, repr=False)
    # Resolved once: a producer asks for them at every submit. Only for a
    # config read from a file: without one they follow the working directory.
    _dirs: dict[str, Path] = field(default_factory=dict, compare=False, repr=False)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def spool_dir(self) -> Path:
        found = self._dirs.get("spool")
        if found is None:
            found = (self.base_dir / self.settings.spool).resolve()
            if self.path is not None:
                self._dirs["spool"] = found
        return found

    @property
    def archive_dir(self) -> Path | None:
        d = self.settings.retention.archive_dir
        return (self.base_dir / d).resolve() if d else None

    @property
    def log_dir(self) -> Path:
        found = self._dirs.get("logs")
        if found is None:
            d = self.settings.logs.dir
            found = (self.base_dir / d).resolve() if d else self.spool_dir / "logs"
            if self.path is not None:
                self._dirs["logs"] = found
        return found

    def spec(self, job: str, method: str) -> JobSpec:
        """The allow-list entry for job.method, or NotAllowed with the reason."""
        spec = self.settings.allowed_jobs.get(job)
        if spec is None:
            hint = did_you_mean(job, list(self.settings.allowed_jobs))
            raise NotAllowed(f"job {job!r} is not in the allow-list{hint}")
        if method not in spec.allowed_methods:
            allowed = ", ".join(spec.allowed_methods)
            hint = did_you_mean(method, spec.allowed_methods)
            raise NotAllowed(
                f"method {method!r} is not allowed for {job} (allowed: {allowed}){hint}"
            )
        return spec

    def class_path(self, job: str) -> str:
        spec = self.settings.allowed_jobs[job]
        return spec.class_path or f"jobs.{job}"

    def retry_policy(self, job: str) -> RetryPolicy:
        found = self._policies.get(job)
        if found is None:
            spec = self.settings.allowed_jobs.get(job)
            base = self.settings.retry
            found = self._policies[job] = spec.retry.apply(base) if spec else base
        return found

    def limits(self, job: str) -> dict[str, float]:
        """The limits an attempt of job runs under: the job's own over the
        spool-wide ones; output is capped at logs.job_log_max_bytes unless set."""
        found = self._limits.get(job)
        if found is None:
            spec = self.settings.allowed_jobs.get(job)
            merged = spec.limits.over(self.settings.limits) if spec else self.settings.limits
            found = self._limits[job] = merged.model_dump(exclude_none=True)
            found.setdefault("output_bytes", self.settings.logs.job_log_max_bytes)
        return dict(found)

    def pooled(self, job: str) -> bool:
        """Whether job's attempts run in pool workers: ``isolation: pool``
        (its entry's, else the spool's) and no limits configured for it."""
        spec = self.settings.allowed_jobs.get(job)
        if spec is None:
            return False
        if (spec.isolation or self.settings.isolation) != "pool":
            return False
        return not spec.limits.over(self.settings.limits).model_dump(exclude_none=True)

    def timeout(self, job: str) -> float:
        spec = self.settings.allowed_jobs.get(job)
        if spec and spec.timeout_seconds is not None:
            return spec.timeout_seconds
        return self.settings.timeout_seconds


_ENV: dict[str, tuple[str, ...]] = {
    "JOBSPOOL_SPOOL": ("spool",),
    "JOBSPOOL_WORKERS": ("workers",),
    "JOBSPOOL_POLL": ("poll_seconds",),
    "JOBSPOOL_HEARTBEAT_SECONDS": ("heartbeat_seconds",),
    "JOBSPOOL_LEASE_SECONDS": ("lease_seconds",),
    "JOBSPOOL_DURABLE": ("durable",),
    "JOBSPOOL_EAGER": ("eager",),
    "JOBSPOOL_START_METHOD": ("start_method",),
    "JOBSPOOL_LOG_DIR": ("logs", "dir"),
}
# Every variable that changes what load_config returns.
ENVIRONMENT = ("JOBSPOOL_CONFIG", *_ENV)


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """The hint "; did you mean X?" for a near miss among choices, else ""."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]}?" if close else ""


def no_config_message(start: Path) -> str:
    where = f"no {CONFIG_NAME} in {start} or its parents"
    return f"{where}; pass --config FILE or set JOBSPOOL_CONFIG"


def find_config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """--config, then JOBSPOOL_CONFIG, then allowed_jobs.yaml in the working
    directory or the nearest of its parents; None when there is none."""
    chosen = explicit or os.environ.get("JOBSPOOL_CONFIG")
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path.resolve()
    here = Path.cwd()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate.resolve()
    return None


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """PyYAML's several lines as one: the file, line, column and problem."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        return f"{path}: not valid YAML{where}: {problem}"
    first = str(exc).strip().splitlines()
    return f"{path}: not valid YAML: {first[0] if first else type(exc).__name__}"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(path, exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return data


def _set(data: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    for key in keys[:-1]:
        inner = data.get(key)
        if not isinstance(inner, dict):
            inner = {}
            data[key] = inner
        data = inner
    data[keys[-1]] = value


def _key_path(loc: Sequence[int | str]) -> str:
    shown = ""
    for part in loc:
        shown += f"[{part}]" if isinstance(part, int) else f".{part}" if shown else str(part)
    return shown or "(top level)"


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _inner_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds, and whether it holds a mapping of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if get_origin(annotation) in (Union, types.UnionType):
        # An optional or shorthand setting (concurrency: 2, or a mapping):
        # the one model among the forms it takes is where its keys are.
        models = [a for a in get_args(annotation) if _inner_model(a)[0] is not None]
        return _inner_model(models[0]) if len(models) == 1 else (None, False)
    if get_origin(annotation) is dict:
        value = get_args(annotation)[1]
        if isinstance(value, type) and issubclass(value, BaseModel):
            return value, True
    return None, False


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The settings model found at a key path, if the path leads to one."""
    model: type[BaseModel] | None = Settings
    name_next = False
    for part in loc:
        if name_next:
            name_next = False
            continue
        fields = {f.alias or n: f for n, f in model.model_fields.items()} if model else {}
        found = fields.get(str(part))
        if found is None:
            return None
        model, name_next = _inner_model(found.annotation)
    return None if name_next else model


_KINDS: dict[type, str] = {
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true/false",
    dict: "a mapping",
    type(None): "nothing (an empty value)",
}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _expected_mapping(loc: Sequence[int | str], value: Any) -> str:
    model = _model_at(loc)
    if model is None:
        return f"expected a mapping of job names to their settings, got {_kind(value)}"
    fields = model.model_fields
    first = [n for n, f in fields.items() if f.is_required()]
    first += [n for n, f in fields.items() if not f.is_required() and not f.alias]
    return f"expected a mapping of settings ({', '.join(first[:2])}, ...), got {_kind(value)}"


def _problem(err: Any) -> str:
    loc, kind, value = err["loc"], err["type"], err.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        return "unknown key" + (did_you_mean(str(loc[-1]), _keys_of(parent)) if parent else "")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return _expected_mapping(loc, value)
    if kind == "list_type":
        return f"expected a list, got {_kind(value)}"
    if kind == "missing":
        example = " (e.g. allowed_methods: [run])" if loc[-1] == "allowed_methods" else ""
        return f"required key missing{example}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    shown = repr(value)
    if isinstance(value, str | int | float | bool) and len(shown) <= 40 and shown not in msg:
        msg += f" (got {shown})"
    return msg


def _describe(exc: ValidationError, source: str) -> str:
    """The first problem in one line; how many more there are."""
    # An unknown key first: a misspelt key is also reported as a missing one.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    line = f"{source}: {_key_path(first['loc'])}: {_problem(first)}"
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return line


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    use_env: bool = True,
    required: bool = True,
) -> Config:
    """Read the config; ``overrides`` map dotted keys ("logs.dir") to flag values.

    With no file named and none found, ConfigError unless ``required`` is
    false (or ``use_env`` is: built-in defaults, for tests).
    """
    found = find_config_path(path) if use_env or path else None
    if found is None and use_env and required:
        raise ConfigError(no_config_message(Path.cwd()))
    data = _read_yaml(found) if found else {}
    if use_env:
        for var, keys in _ENV.items():
            if var in os.environ:
                _set(data, keys, os.environ[var])
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(data, tuple(dotted.split(".")), value)
    source = str(found) if found else "settings"
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    problem = _schedule_problem(settings) or _isolation_problem(settings)
    if problem is not None:
        raise ConfigError(f"{source}: {problem}")
    return Config(settings=settings, path=found)

"""Unique jobs, the rules (no I/O): key templates, the three windows, and
when each window ends.

Owns what ``unique: {key, until, for}`` means, wherever it is written (an
allow-list entry, ``run_background_job(unique=...)``, ``runjob --unique``,
the dashboard): the template's grammar, how it is filled from a job's
params, and two pure functions over a job's lifecycle that the lock files
(:mod:`jobspool.unique`) and every stage that moves a job rely on:
:func:`releases` (which transition ends the window) and :func:`holds`
(whether a job in a given state still holds its key).

The windows (the names follow Laravel's ``ShouldBeUnique`` /
``ShouldBeUniqueUntilProcessing`` and Sidekiq Enterprise's
``unique_until``):

- ``queued``: held while the job waits for its first attempt; released
  when a runner claims it (``ShouldBeUniqueUntilProcessing``, Sidekiq's
  ``unique_until: :start``). A second job with the key may be queued while
  the first one runs.
- ``started``: held while the job waits and while its first attempt runs;
  released when that attempt ends, whatever its outcome (a job waiting for
  a retry no longer holds it).
- ``finished`` (the default): held until the job is completed, failed for
  good or cancelled; retries keep holding it (``ShouldBeUnique``, Sidekiq's
  ``unique_until: :success``, except that a job that fails for good also
  releases its key: nothing is left waiting on a job that will never run).

``for`` bounds every window: a lock older than that is expired, whatever
its job is doing (see :mod:`jobspool.unique` on clocks).

Invariants: a template is plain field substitution only (``{name}`` or
``{0}``, ``{{``/``}}`` for braces): no attribute access, no indexing, no
conversion, no format spec, so filling one never runs code nor reaches
beyond the params; a filled key is at most :data:`MAX_KEY` characters.
"""

from __future__ import annotations

import json
import re
import string
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from jobspool.recurring import parse_duration
from jobspool.states import TERMINAL, Status

Until = Literal["queued", "started", "finished"]
UNTILS: tuple[Until, ...] = ("queued", "started", "finished")
MAX_KEY = 200
MAX_TEMPLATE = 200
DEFAULT_FOR = 3600
# A window longer than this is refused: a key never waits more than 30 days.
MAX_FOR = 30 * 86400
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}|[0-9]{1,3}")


def check_template(template: str) -> str:
    """The template itself, or ValueError (one line) saying what is wrong."""
    if not template or len(template) > MAX_TEMPLATE:
        raise ValueError(f"a key template must be 1 to {MAX_TEMPLATE} characters")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{template!r} is not a key template: {exc}") from None
    for _text, name, spec, conversion in parts:
        if name is None:
            continue
        if not _FIELD.fullmatch(name) or spec or conversion:
            raise ValueError(
                f"{template!r}: {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} is not allowed; use plain "
                "{param_name} or {0} (no attributes, indexing, conversions or formats)"
            )
    return template


def fields_of(template: str) -> list[str]:
    return [name for _t, name, _s, _c in string.Formatter().parse(template) if name is not None]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def render(template: str, positional: list[Any], named: dict[str, Any]) -> str:
    """The key for a job's params; ValueError (one line) for a field the
    params do not have. ``named`` holds the params by parameter name (for
    positional params: as bound to the method's signature)."""
    out = []
    for text, name, _spec, _conv in string.Formatter().parse(check_template(template)):
        out.append(text)
        if name is None:
            continue
        if name.isdigit():
            if int(name) >= len(positional):
                raise ValueError(f"{{{name}}}: the job has {len(positional)} positional params")
            out.append(_text(positional[int(name)]))
        elif name in named:
            out.append(_text(named[name]))
        else:
            raise ValueError(f"{{{name}}}: the job has no param named {name!r}")
    key = "".join(out)
    if not key or len(key) > MAX_KEY:
        raise ValueError(f"the filled key must be 1 to {MAX_KEY} characters (got {len(key)})")
    return key


def _window(value: object) -> int:
    seconds = parse_duration(value)
    if seconds > MAX_FOR:
        raise ValueError(f"{value!r} is longer than 30 days")
    return seconds


Window = Annotated[int, BeforeValidator(_window)]


class UniqueSpec(BaseModel):
    """``unique:`` as written: a key template, the window, its bound."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    key: Annotated[str, AfterValidator(check_template)]
    until: Until = "finished"
    for_seconds: Window = Field(
        default=DEFAULT_FOR, validation_alias=AliasChoices("for", "for_seconds")
    )


def releases(until: str, to: Status) -> bool:
    """Whether a job moving to ``to`` ends its key's window.

    ``to`` is RUNNING for a claim, PENDING for a retry (or a hand-back)
    after an attempt, a terminal status otherwise. Releasing twice is
    harmless: a lock is only ever removed while it names the job.
    """
    if to is Status.RUNNING:
        return until == "queued"
    if to is Status.PENDING:
        return until != "finished"
    return True


def holds(until: str, status: Status, attempts: int) -> bool:
    """Whether a job in ``status``, with ``attempts`` recorded, is still
    inside its key's window: the judgment of a lock whose release may have
    been lost (the state :func:`releases` would have ended it in)."""
    if status in TERMINAL:
        return False
    if until == "finished":
        return True
    if until == "queued":
        return status is Status.PENDING and attempts == 0
    return attempts == 0  # started: waiting, or its first attempt running

"""Times as people read them: local clock time, and "in 5 min" / "5 min ago".

Owns the wording of times in the CLI and the dashboard (one wording, so the
two never disagree about what "in 5 min" means). Pure functions: the
caller passes ``now``, so the text is the same for the same instants.
Records keep UTC; only what is shown is local.
"""

from __future__ import annotations

from datetime import datetime


def span(seconds: float) -> str:
    """A length of time, rounded to what matters: "40 s", "5 min", "2 h 5 min", "3 d 4 h"."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def relative(when: datetime, now: datetime) -> str:
    """ "in 5 min", "5 min ago", or "now" within a second."""
    ahead = (when - now).total_seconds()
    if abs(ahead) < 1:
        return "now"
    return f"in {span(ahead)}" if ahead > 0 else f"{span(-ahead)} ago"


def local(when: datetime) -> str:
    """The machine's local time, with its zone's name."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


def local_and_relative(when: datetime, now: datetime) -> str:
    return f"{local(when)} ({relative(when, now)})"

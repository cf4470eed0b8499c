"""Text from job files and job code, as shown to a person on a terminal.

Owns one rule: every character that is not printable (C0 and C1 controls,
the escape that starts a terminal's control sequences, line and paragraph
separators, bidirectional overrides) is shown as its backslash escape, so
what a job printed or a producer wrote can never redraw the terminal of
whoever reads it, hide a line, or reorder what it shows. Line breaks and
tabs stay what they are where the caller keeps lines.
"""

from __future__ import annotations


def printable(text: str, *, keep: str = "") -> str:
    """text with every unprintable character but those in keep escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else ascii(c)[1:-1] for c in text)


def printable_lines(text: str) -> str:
    """Like printable, for many lines: the line breaks and tabs stay."""
    return "\n".join(printable(line, keep="\t") for line in text.split("\n"))

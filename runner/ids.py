"""What a job id and an allow-list name may be: the two patterns, alone.

Kept apart from the record model (``jobspool.model``, which brings pydantic)
so that what only needs to recognise an id (file names, the backlog's
quick look in a helper process) starts in milliseconds.
"""

from __future__ import annotations

import re

ID_PATTERN = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,99}")
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def is_valid_id(value: str) -> bool:
    """A job id is a whole-string match: letters, digits, '-', '_', '.', no leading dot."""
    return ID_PATTERN.fullmatch(value) is not None and ".." not in value

"""``python -m jobspool.dashboard dashboard|up ...``: the dashboard commands on their own.

The same commands as ``jobspool dashboard`` and ``jobspool up``, for scripts
and benchmarks that want them without the rest of the CLI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from jobspool.dashboard.commands import register


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobspool.dashboard")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register(sub)
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``python -m jobspool ...``: the ``jobspool`` command, for where scripts are not on PATH."""

import sys

from jobspool.cli import main

if __name__ == "__main__":
    sys.exit(main())

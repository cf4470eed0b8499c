"""``python -m runner.runjob`` = the ``runjob`` console script."""

import sys

from runner.cli import runjob_main

if __name__ == "__main__":
    sys.exit(runjob_main())

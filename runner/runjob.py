"""``python -m jobspool.runjob`` = the ``runjob`` console script."""

import sys

from jobspool.cli import runjob_main

if __name__ == "__main__":
    sys.exit(runjob_main())

"""One contender in a tick-claim race: ``python -m tests.support.tickrace
CONFIG SCHEDULE STAMP GO RUNNER``.

Waits (bounded polling) for the file GO to exist, so that every contender
starts at once, then settles the tick through the runner's own scheduling
stage, as a runner that found it due would.
"""

from __future__ import annotations

import os
import sys
import time

from jobspool.config import load_config
from jobspool.recurring import parse_stamp
from jobspool.spool import Spool
from jobspool.stages.scheduling import Scheduling


def main(argv: list[str]) -> int:
    config, name, stamp, go, runner = argv
    cfg = load_config(config)
    spool = Spool.open(cfg.spool_dir, durable=cfg.settings.durable, log_dir=cfg.log_dir)
    stage = Scheduling(spool, cfg, f"host-{runner}")
    tick = parse_stamp(stamp)
    assert tick is not None
    deadline = time.monotonic() + 30
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.001)
    stage.settle(name, tick, runner)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

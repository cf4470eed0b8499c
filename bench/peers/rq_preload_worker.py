#!/usr/bin/env python3
"""An RQ worker started from a script that imports the job's modules before forking work horses.

RQ's documented advice for jobs that share costly imports ("Performance notes" in the workers
docs): instead of `rq worker`, run your own script that imports the libraries, then starts a
Worker on the queues. Each work horse forked from it finds the modules already loaded.

  rq_preload_worker.py URL QUEUE [QUEUE ...]
"""
import sys

from redis import Redis
from rq import Worker

import realjob  # noqa: F401  (preloaded: json, datetime, pathlib, pydantic and the job itself)


def main():
    url, queues = sys.argv[1], sys.argv[2:]
    w = Worker(queues, connection=Redis.from_url(url))
    w.work(logging_level="WARNING")  # as `rq worker -q`


if __name__ == "__main__":
    main()

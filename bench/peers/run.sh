#!/usr/bin/env bash
# Peer benchmark: the same workload (N no-op jobs that append one record each, 2 workers)
# through RQ's forking worker, Huey (sqlite, processes), Dramatiq (Redis, 2 processes x 8 threads)
# and jobspool, in one sitting, then a table of medians. Ratios between rows of one run are
# what count: absolute figures drift by 30 % or more between runs on a shared machine.
#
#   bash bench/peers/run.sh [PROJECT_DIR]      # from the project root; PROJECT_DIR defaults to .
#
# Environment: N (2000) WORKERS (2) REPEATS (3) OUT (a new temporary folder) ROWS (all below)
#   ROWS="limits rq-fork rq-fork-realistic rq-fork-realistic-preload huey-sqlite-process
#         dramatiq-p2t8 jobspool jobspool-realistic jobspool-batch jobspool-pool"
# RQ's realistic rows run the same job body as jobspool-realistic (realjob.py): from a plain
# `rq worker`, which imports the job module in each work horse, and from a worker script that
# imports it before forking (rq_preload_worker.py, RQ's documented performance advice). The
# plain one runs some 10 times slower than rq-fork (each work horse imports pydantic): it waits
# up to 600 s per phase.
# jobspool's rows: the default mode (process per attempt, run_background_job), the same with a
# job module that imports what application jobs import, batch submit (run_background_jobs), and
# pooled attempt workers (isolation: pool).
# The peers' virtualenv is made once in $PEERS_VENV (default: .peers-venv in the project root,
# which .gitignore should list); redis-server comes from apt when missing. jobspool runs from its
# own virtualenv, made with a plain `pip install PROJECT_DIR` (not editable), as a user gets it.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "${1:-.}" && pwd)
N=${N:-2000}; W=${WORKERS:-2}; R=${REPEATS:-3}
OUT=${OUT:-$(mktemp -d -t peers-XXXXXX)}
ROWS=${ROWS:-"limits rq-fork rq-fork-realistic rq-fork-realistic-preload huey-sqlite-process dramatiq-p2t8 jobspool jobspool-realistic jobspool-batch jobspool-pool"}
PV=${PEERS_VENV:-$PROJECT/.peers-venv}
JV=$OUT/jobspool-venv
mkdir -p "$OUT"
if [ ! -x "$PV/bin/python" ]; then
  python3 -m venv "$PV" && "$PV/bin/pip" install -q rq redis huey "dramatiq[redis]" pydantic watchdog || exit 1
fi
if ! command -v redis-server >/dev/null; then
  apt-get update -qq >/dev/null && apt-get install -y -qq redis-server >/dev/null || exit 1
fi
C="--n $N --workers $W --repeats $R --out $OUT"
row() { case " $ROWS " in *" $1 "*) return 0;; esac; return 1; }
cd "$HERE"
if row jobspool || row jobspool-realistic || row jobspool-batch || row jobspool-pool || row limits; then
  python3 -m venv "$JV" && "$JV/bin/pip" install -q "$PROJECT" || exit 1
fi
row limits && "$JV/bin/python" limits.py --repeats "$R" --duration 1.0 --out "$OUT"
row rq-fork && "$PV/bin/python" bench_rq.py --mode fork $C --backlog purge
row rq-fork-realistic && "$PV/bin/python" bench_rq.py --mode fork --job realistic \
  --label rq/fork-realistic-job --backlog purge --timeout 600 $C
row rq-fork-realistic-preload && "$PV/bin/python" bench_rq.py --mode fork --job realistic --preload \
  --label rq/fork-realistic-preload --backlog purge $C
row huey-sqlite-process && "$PV/bin/python" bench_huey.py --storage sqlite --mode process $C
row dramatiq-p2t8 && "$PV/bin/python" bench_dramatiq.py --threads 8 --worker-timeout-ms 1000 \
  --label dramatiq/redis-p2t8 $C
row jobspool && "$JV/bin/python" bench_jobspool.py $C
row jobspool-realistic && "$JV/bin/python" bench_jobspool.py --job realistic \
  --label jobspool/process-realistic-job $C
row jobspool-batch && "$JV/bin/python" bench_jobspool.py --mode batch --label jobspool/batch-submit $C
row jobspool-pool && "$JV/bin/python" bench_jobspool.py --mode pool --label jobspool/pool $C
echo; echo "=== medians over $R repeats (min-max) in $OUT ==="
"$PV/bin/python" summarize.py --out "$OUT" --order "rq/fork,rq/fork-realistic-job,rq/fork-realistic-preload,huey/sqlite-process,dramatiq/redis-p2t8,jobspool/process-per-attempt,jobspool/process-realistic-job,jobspool/batch-submit,jobspool/pool"

#!/usr/bin/env bash
# Every row of issue 26's speed table, each beside its peer or floor measured in the same run,
# one after the other (never two at once: they would load each other), with `uptime` before each.
#
#   SLURM_CONF=/tmp/experiments-slurm-s5/slurm.conf bash bench/run_all.sh        # ~35 min
#   ROWS="start planning" bash bench/run_all.sh                                   # some rows
#   LAUNCH_N=100000 bash bench/run_all.sh                                         # smaller 1M row
#
# Rows (ROWS, default all): start (--help vs the click+rich import), launch2000 (two tiers,
# partition DOWN, vs submitit map_array), planning (drylaunch 10k/100k vs snakemake -n, and
# drylaunch of 1M: time and peak RSS), pack (300 trivial artifacts pack=50 until built vs a bare
# `sbatch --array` of `true`), wait (after the last task ends), status (100k tracked tasks, all
# ended, beside reading jobs.json; a private cluster), launch1m (1M artifacts, partitions DOWN,
# vs bare sbatch of the same arrays; a private cluster with MaxJobCount raised, stopped after).
# The rows on $SLURM_CONF's cluster run `scancel --me` there: use a test cluster of your own.
# Output: bench/.work/run_all-<UTC time>/<row>.md (+ .err), loads.txt, all.md.
# PYTHONDONTWRITEBYTECODE is unset: start-up is measured with bytecode caches, as users have.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
OUT=${OUT:-$HERE/.work/run_all-$(date -u +%Y%m%dT%H%M)}
ROWS=${ROWS:-start launch2000 planning pack wait status launch1m}
LAUNCH_N=${LAUNCH_N:-1000000}
PY=${PYTHON:-python3}
: "${SLURM_CONF:?set SLURM_CONF to a test cluster of your own (rows run scancel --me there)}"
unset PYTHONDONTWRITEBYTECODE
export PYTHONPATH=$REPO
# The private clusters of launch1m and status: their own directories and ports (override them
# to run two checkouts' benchmarks side by side: ports BENCH_PRIVATE_PORT .. +5).
PRIVATE_DIR=${BENCH_PRIVATE_DIR:-/tmp/experiments-slurm-bench}
PRIVATE_PORT=${BENCH_PRIVATE_PORT:-16847}
PRIVATE_NAME=${BENCH_PRIVATE_NAME:-expbench}
mkdir -p "$OUT"

private() {  # private CMD...: CMD with launch1m's private cluster in SLURM_TEST_*
  SLURM_TEST_DIR=$PRIVATE_DIR SLURM_TEST_CTLD_PORT=$PRIVATE_PORT \
    SLURM_TEST_SLURMD_PORT=$((PRIVATE_PORT + 1)) SLURM_TEST_DBD_PORT=$((PRIVATE_PORT + 2)) \
    SLURM_TEST_CLUSTER_NAME=$PRIVATE_NAME "$@"
}

private_status() {  # the same for the status row's cluster: its own directory and ports
  SLURM_TEST_DIR=$PRIVATE_DIR-status SLURM_TEST_CTLD_PORT=$((PRIVATE_PORT + 3)) \
    SLURM_TEST_SLURMD_PORT=$((PRIVATE_PORT + 4)) SLURM_TEST_DBD_PORT=$((PRIVATE_PORT + 5)) \
    SLURM_TEST_CLUSTER_NAME=${PRIVATE_NAME}st "$@"
}

bash "$HERE/setup_peers.sh" > "$OUT/peers.txt" 2> "$OUT/peers.err"
cat "$OUT/peers.txt"

row() {  # row NAME SCRIPT ARGS...: run one benchmark, its output into NAME.md
  local name=$1
  shift
  [[ " $ROWS " == *" $name "* ]] || return 0
  echo "== $name $(date -u +%H:%M:%S): $(uptime)" | tee -a "$OUT/loads.txt"
  if ! $PY "$@" > "$OUT/$name.md" 2> "$OUT/$name.err"; then
    echo "!! $name failed: see $OUT/$name.err" | tee -a "$OUT/loads.txt"
  fi
}

row start "$HERE/bench_start.py" --reps 21
row launch2000 "$HERE/bench_slurm.py" --cluster env --allow-scancel-me --parts a --tiers 2 \
  --sizes 2000 --status-n 0 --reps 5
row planning "$HERE/bench_planning.py" --sizes 10000,100000 --reps 3 --big 1000000
row pack "$HERE/bench_pack.py" --cluster env --allow-scancel-me --n 300 --pack 50 --reps 3 \
  --unpacked-reps 0
row wait "$HERE/bench_wait.py" --cluster env --allow-scancel-me --n 20 --sleeps 5,60 --reps 2
PY="private_status $PY" row status "$HERE/bench_status.py" --tree "this=$REPO" --n 100000 \
  --reps 3
if [[ " $ROWS " == *" status "* ]]; then
  private_status bash "$REPO/scripts/slurm-test-cluster.sh" stop > /dev/null 2>&1 || true
fi
PY="private $PY" row launch1m "$HERE/bench_planning.py" --sizes 1000 --reps 1 --no-snakemake \
  --launch "$LAUNCH_N"
if [[ " $ROWS " == *" launch1m "* ]]; then  # its private cluster holds a million jobs: free it
  private bash "$REPO/scripts/slurm-test-cluster.sh" stop > /dev/null 2>&1 || true
fi
echo "== end $(date -u +%H:%M:%S): $(uptime)" | tee -a "$OUT/loads.txt"

{
  echo "# bench/run_all.sh, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  cat "$OUT/peers.txt"
  echo
  echo '```'
  cat "$OUT/loads.txt"
  echo '```'
  for name in $ROWS; do
    [[ -f $OUT/$name.md ]] && { echo; echo "## $name"; echo; cat "$OUT/$name.md"; }
  done
} > "$OUT/all.md"
echo "wrote $OUT/all.md"

#!/usr/bin/env bash
# Install the peer tools the benchmarks compare against, away from the project's environment:
#   - bench/.peers/          a venv (gitignored) with snakemake, snakemake-executor-plugin-slurm,
#                            submitit
#   - GNU parallel           via apt (bench_local.py; xargs is used as well, and alone without it)
# Idempotent: a second run only re-checks and prints the versions.
#
#   bash bench/setup_peers.sh
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=$HERE/.peers
PY=${PYTHON:-python3}
# Exact versions, so that figures of different runs compare the same tools (the 10k snakemake
# figure moved from 8.4 s to 13.7 s between runs with unpinned versions). Change them on purpose.
PACKAGES=(snakemake==9.27.1 snakemake-executor-plugin-slurm==2.8.0 submitit==1.5.4)

log() { echo "setup_peers: $*" >&2; }

if [[ ! -x $VENV/bin/python ]]; then
  log "creating venv $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi

pinned_ok() {
  "$VENV/bin/python" - "${PACKAGES[@]}" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
EOF
}

if ! pinned_ok; then
  log "installing ${PACKAGES[*]} into $VENV (pinned)"
  "$VENV/bin/python" -m pip install -q "${PACKAGES[@]}"
fi

is_gnu_parallel() { parallel --version 2>/dev/null | head -n1 | grep -q "GNU parallel"; }

if ! is_gnu_parallel; then   # (moreutils ships another `parallel`)
  if ((EUID == 0)) && command -v apt-get >/dev/null; then
    log "installing GNU parallel with apt"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q parallel >&2
  else
    log "GNU parallel is missing and cannot be installed here (not root / no apt): bench_local.py uses xargs only"
  fi
fi

echo "peers venv: $VENV ($("$VENV/bin/python" --version 2>&1))"
"$VENV/bin/python" - <<'EOF'
from importlib.metadata import version
for pkg in ("snakemake", "snakemake-executor-plugin-slurm", "submitit"):
    print(f"  {pkg} {version(pkg)}")
EOF
if is_gnu_parallel; then
  echo "GNU parallel $(parallel --version 2>/dev/null | head -n1 | awk '{print $3}')"
fi
echo "xargs $(xargs --version | head -n1 | awk '{print $NF}')"

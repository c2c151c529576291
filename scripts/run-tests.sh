#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the package with its test extras,
# starts the private Slurm test clusters (installing Slurm, munge and MariaDB when missing),
# then runs pytest. Slurm and storage tests fail rather than skip when CI=true.
# Debian packages are installed with scripts/apt-install.sh, which waits for another apt-get or
# dpkg holding apt's locks. A test cluster that does not come up stops the run before pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "run-tests: $*" >&2; }

python3 -m pip install --quiet --disable-pip-version-check -e '.[test,gcs,dev,docs,report,results]'
# The report's browser tests drive Debian's headless Chromium through its chromedriver
# (selenium is pointed at /usr/bin/chromedriver: nothing downloads a browser). Syscall faults
# (flock failing as on Lustre without flock) are injected with strace -e inject.
debs=()
command -v chromium >/dev/null && [[ -x /usr/bin/chromedriver ]] || debs+=(chromium chromium-driver)
command -v strace >/dev/null || debs+=(strace)
if ((${#debs[@]})); then bash scripts/apt-install.sh "${debs[@]}"; fi
python3 -m ruff check experiments tests bench examples
python3 -m mypy experiments

# Start a test cluster (the script's environment: SLURM_TEST_* of tests/_slurm.py's cluster_env
# in "$@", none for the default one); print its slurm.conf. Fails loudly, before any test runs:
# without its cluster every Slurm test would fail one by one.
cluster() {
  local out
  if ! out=$(env "$@" bash scripts/slurm-test-cluster.sh start) || [[ $out != "export SLURM_CONF="* ]]
  then
    say "ERROR: the Slurm test cluster ${*:-(default)} did not come up (the reason is above);"
    say "       not running the tests, which need it. Fix that, then run this script again"
    say "       (or start the cluster alone: scripts/slurm-test-cluster.sh start)."
    return 1
  fi
  echo "${out#export SLURM_CONF=}"
}

SLURM_CONF=$(cluster) || exit 1
export SLURM_CONF
PYTEST=(python3 -m pytest -q -p no:cacheprovider)
if (($#)); then exec "${PYTEST[@]}" --durations=25 "$@"; fi

# The whole suite. The scenarios that mostly wait for Slurm (time limits, requeues: marker
# long_wait, ~12 minutes of waiting) run beside the rest in a second pytest, on a cluster of
# their own (slot 9 of tests/_slurm.py), so neither shares a queue with the other.
long_env=$(EXPERIMENTS_TEST_SLOT=9 python3 -c 'from tests._slurm import cluster_env
for k, v in cluster_env("default").items(): print(f"{k}={v}")')
mapfile -t long_env <<<"$long_env"
long_conf=$(cluster "${long_env[@]}") || exit 1
long_log=$(mktemp)
(SLURM_CONF=$long_conf EXPERIMENTS_TEST_SLOT=9 exec "${PYTEST[@]}" -m long_wait --durations=10 \
    >"$long_log" 2>&1) &
long_pid=$!
rc=0
"${PYTEST[@]}" -m "not long_wait" --durations=25 || rc=$?
long_rc=0
wait "$long_pid" || long_rc=$?
echo "---- the long_wait scenarios (their own pytest and cluster) ----"
cat "$long_log"
rm -f "$long_log"
echo "run-tests: main pytest exit $rc, long_wait pytest exit $long_rc"
((rc == 0 && long_rc == 0))

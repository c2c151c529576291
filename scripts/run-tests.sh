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

# The whole suite, as three pytests side by side (2 cores; measured in docs/development.md):
#   - the tests without Slurm, CPU bound (~3.5 minutes alone), shown as they run;
#   - the Slurm scenarios, which mostly wait for the scheduler, on the default cluster;
#   - the scenarios that wait for Slurm's clocks (marker long_wait: time limits, requeues,
#     ~11 minutes), on a cluster of their own (slot 9 of tests/_slurm.py).
long_env=$(EXPERIMENTS_TEST_SLOT=9 python3 -c 'from tests._slurm import cluster_env
for k, v in cluster_env("default").items(): print(f"{k}={v}")')
mapfile -t long_env <<<"$long_env"
long_conf=$(cluster "${long_env[@]}") || exit 1
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
(SLURM_CONF=$long_conf EXPERIMENTS_TEST_SLOT=9 exec "${PYTEST[@]}" -m long_wait --durations=10 \
    >"$logs/long_wait" 2>&1) &
long_pid=$!
(exec "${PYTEST[@]}" -m "slurm and not long_wait" --durations=25 >"$logs/slurm" 2>&1) &
slurm_pid=$!
rc=0
"${PYTEST[@]}" -m "not slurm" --durations=15 2>&1 | tee "$logs/rest" || rc=$?
slurm_rc=0
wait "$slurm_pid" || slurm_rc=$?
long_rc=0
wait "$long_pid" || long_rc=$?
echo "---- the Slurm scenarios (their own pytest, on the default cluster) ----"
cat "$logs/slurm"
echo "---- the long_wait scenarios (their own pytest and cluster) ----"
cat "$logs/long_wait"
# One closing line for the three: pytest's counts added up.
count() {
  cat "$logs"/rest "$logs"/slurm "$logs"/long_wait | grep -E '^(=+ )?[0-9]+ [a-z]+.* in [0-9.]+s' |
    grep -oE "[0-9]+ $1\b" | awk '{s += $1} END {print s + 0}'
}
echo "run-tests: pytest exits: without Slurm $rc, Slurm $slurm_rc, long_wait $long_rc"
echo "run-tests: $(count passed) passed, $(($(count failed) + $(count 'errors?'))) failed"
((rc == 0 && slurm_rc == 0 && long_rc == 0))

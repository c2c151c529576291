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
[[ -x /usr/sbin/sshd ]] || debs+=(openssh-server)  # tests/remote: a private sshd
if ((${#debs[@]})); then bash scripts/apt-install.sh "${debs[@]}"; fi
python3 -m ruff check experiments tests bench examples
python3 -m mypy experiments

# Start a test cluster (the script's environment: SLURM_TEST_* of the fixtures' cluster_env
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
PYTEST=(python3 -m pytest -q -p no:cacheprovider -rs)  # -rs: every skip is named in the log
if (($#)); then exec "${PYTEST[@]}" --durations=25 "$@"; fi

# The whole suite, as four pytests side by side (2 cores; measured in docs/development.md): only
# the first is CPU bound, the others mostly wait for Slurm.
#   - the tests without Slurm, shown as they run;
#   - the Slurm scenarios, on the default cluster;
#   - the scenarios that wait for Slurm's clocks (marker long_wait: real time limits, requeues;
#     ~12 minutes one after the other), in two halves on clusters of their own: the files of
#     LONG_WAIT_A on slot 9 (tests/support/slurm_cluster.py), every other one on slot 10.
LONG_WAIT_A=(tests/e2e/test_slurm_ops.py tests/e2e/test_trust.py tests/e2e/test_max_running.py
             tests/e2e/test_sweep_slurm.py)

# Slot $1's default test cluster (the fixtures' cluster_env), started; prints its slurm.conf.
slot_cluster() {
  local text env
  text=$(EXPERIMENTS_TEST_SLOT=$1 python3 -c 'from tests.support.slurm_cluster import cluster_env
for k, v in cluster_env("default").items(): print(f"{k}={v}")') || return 1
  mapfile -t env <<<"$text"
  cluster "${env[@]}"
}

# A pytest in the background on slot $2 (its cluster's slurm.conf: $3), output in $logs/$1.
declare -A side_pids
side() {
  local name=$1 slot=$2 conf=$3
  shift 3
  (SLURM_CONF=$conf EXPERIMENTS_TEST_SLOT=$slot exec "${PYTEST[@]}" "$@" >"$logs/$name" 2>&1) &
  side_pids[$name]=$!
}

long_a=$(slot_cluster 9) || exit 1
long_b=$(slot_cluster 10) || exit 1
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
side slurm "${EXPERIMENTS_TEST_SLOT:-0}" "$SLURM_CONF" -m "slurm and not long_wait" --durations=25
side long_wait_a 9 "$long_a" -m long_wait --durations=10 "${LONG_WAIT_A[@]}"
side long_wait_b 10 "$long_b" -m long_wait --durations=10 \
  "${LONG_WAIT_A[@]/#/--ignore=}"
rc=0
"${PYTEST[@]}" -m "not slurm" --durations=15 2>&1 | tee "$logs/rest" || rc=$?
exits="without Slurm $rc"
failed=$((rc != 0))
for name in slurm long_wait_a long_wait_b; do
  side_rc=0
  wait "${side_pids[$name]}" || side_rc=$?
  echo "---- $name: its own pytest and cluster (exit $side_rc) ----"
  cat "$logs/$name"
  exits+=", $name $side_rc"
  ((side_rc == 0)) || failed=1
done
# One closing line for the four: pytest's counts added up.
count() {
  cat "$logs"/* | grep -E '^(=+ )?[0-9]+ [a-z]+.* in [0-9.]+s' | grep -oE "[0-9]+ $1\b" |
    awk '{s += $1} END {print s + 0}'
}
echo "run-tests: pytest exits: $exits"
echo "run-tests: $(count passed) passed, $(($(count failed) + $(count 'errors?'))) failed"
((failed == 0))

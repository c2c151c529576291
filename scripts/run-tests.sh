#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the package with its test extras,
# starts the private Slurm test cluster (installing Slurm, munge and MariaDB when missing),
# then runs pytest. Slurm and storage tests fail rather than skip when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test,gcs,dev,docs,report,results]'
# The report's browser tests drive Debian's headless Chromium through its chromedriver
# (selenium is pointed at /usr/bin/chromedriver: nothing downloads a browser).
if ! command -v chromium >/dev/null || ! [ -x /usr/bin/chromedriver ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
# Syscall faults (flock failing as on Lustre without flock) are injected with strace -e inject.
if ! command -v strace >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace
fi
[ -x /usr/sbin/sshd ] || { apt-get -o DPkg::Lock::Timeout=900 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq openssh-server; }  # tests/remote: a private sshd (tests/_sshd.py)
python3 -m ruff check experiments tests bench examples
python3 -m mypy experiments
eval "$(bash scripts/slurm-test-cluster.sh start)"
export SLURM_CONF
PYTEST=(python3 -m pytest -q -p no:cacheprovider)
if (($#)); then exec "${PYTEST[@]}" --durations=25 "$@"; fi

# The whole suite. The scenarios that mostly wait for Slurm (time limits, requeues: marker
# long_wait, ~12 minutes of waiting) run beside the rest in a second pytest, on a cluster of
# their own (slot 9 of tests/support/slurm_cluster.py), so neither shares a queue with the other.
long_log=$(mktemp)
(unset SLURM_CONF; EXPERIMENTS_TEST_SLOT=9 exec "${PYTEST[@]}" -m long_wait --durations=10 \
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

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
python3 -m ruff check experiments tests bench examples
python3 -m mypy experiments
eval "$(bash scripts/slurm-test-cluster.sh start)"
export SLURM_CONF
exec python3 -m pytest -q -p no:cacheprovider "$@"

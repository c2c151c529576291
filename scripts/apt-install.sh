#!/usr/bin/env bash
# Install Debian packages the tests need (as root):   scripts/apt-install.sh PACKAGE...
#
# Another apt-get or dpkg running at the same time (an unattended upgrade, a second checkout's
# tests, a person installing something) holds apt's locks. Wait for it, up to
# APT_LOCK_WAIT_SECS (default 900) seconds, instead of failing at once on the lock:
#   - dpkg's locks (/var/lib/dpkg/lock-frontend, lock), taken by `apt-get install`: apt itself
#     waits with -o DPkg::Lock::Timeout, and says whom it waits for ("Waiting for cache lock").
#   - the package lists' lock (/var/lib/apt/lists/lock), taken by `apt-get update`: that option
#     does not cover it (apt 2.6 fails at once), so update is retried while another holds it.
# Used by scripts/run-tests.sh and scripts/slurm-test-cluster.sh.
set -euo pipefail

WAIT=${APT_LOCK_WAIT_SECS:-900}
APT=(apt-get -o "DPkg::Lock::Timeout=$WAIT")
export DEBIAN_FRONTEND=noninteractive

log() { echo "apt-install: $*" >&2; }

# `apt-get update`, retried every 2 s while another update holds the package lists' lock.
update() {
  local out deadline=$((SECONDS + WAIT)) said=0
  until out=$("${APT[@]}" -qq update 2>&1); do
    if [[ $out != *"Could not get lock"* ]] || ((SECONDS >= deadline)); then
      printf '%s\n' "$out" >&2
      log "ERROR: apt-get update failed (see above)"
      return 1
    fi
    if ((!said)); then
      log "waiting (up to ${WAIT}s) for another apt-get: ${out%%$'\n'*}"
      said=1
    fi
    sleep 2
  done
  printf '%s' "$out" >&2
}

# `apt-get install`; apt repeats its "Waiting for cache lock" line (with \r): show it once.
install() {
  "${APT[@]}" -q install -y "$@" 2>&1 | tr '\r' '\n' | uniq >&2
}

(($#)) || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
((EUID == 0)) || { log "ERROR: installing $* needs root (apt-get): install them or run as root"; exit 1; }
log "installing $* (waits up to ${WAIT}s for another apt-get or dpkg holding apt's locks)"
update
install "$@" || { log "ERROR: apt-get install $* failed (see above)"; exit 1; }
log "installed $*"

"""The option names sbatch knows, so a requirement (or ``launch --set``) naming any other is
refused at ``drylaunch`` instead of failing at ``sbatch``.

``LONG`` is every long option of sbatch 22.05 (its manual page; ``tests`` compare it with the
test cluster's ``sbatch --help``) plus those added since, up to 24.11. A requirement names a
long option in full: ``J`` is not ``-J`` (sbatch would read ``--J``), and an abbreviation such
as ``part`` is refused too (sbatch would expand it, but to which option depends on its version).
``SHORT`` maps sbatch's one-letter options to their long names, for the message.
"""

from __future__ import annotations

import difflib

LONG = frozenset("""
account acctg-freq array batch bb bbf begin chdir cluster-constraint clusters comment
constraint container container-id contiguous core-spec cores-per-socket cpu-freq cpus-per-gpu
cpus-per-task deadline delay-boot dependency distribution error exclude exclusive export
export-file extra extra-node-info get-user-env gid gpu-bind gpu-freq gpus gpus-per-node
gpus-per-socket gpus-per-task gres gres-flags help hint hold ignore-pbs input job-name
kill-on-invalid-dep licenses mail-type mail-user mcs-label mem mem-bind mem-per-cpu mem-per-gpu
mincpus network nice no-kill no-requeue nodefile nodelist nodes ntasks ntasks-per-core
ntasks-per-gpu ntasks-per-node ntasks-per-socket oom-kill-step open-mode output overcommit
oversubscribe parsable partition power prefer priority profile propagate qos quiet reboot
requeue reservation segment signal sockets-per-node spread-job switches test-only
thread-spec threads-per-core time time-min tmp tres-bind tres-per-task uid usage use-min-nodes
verbose version wait wait-all-nodes wckey wrap
""".split())

SHORT = {"A": "account", "a": "array", "B": "extra-node-info", "b": "begin", "C": "constraint",
         "c": "cpus-per-task", "D": "chdir", "d": "dependency", "e": "error", "F": "nodefile",
         "G": "gpus", "H": "hold", "h": "help", "i": "input", "J": "job-name", "k": "no-kill",
         "L": "licenses", "M": "clusters", "m": "distribution", "N": "nodes", "n": "ntasks",
         "O": "overcommit", "o": "output", "p": "partition", "Q": "quiet", "q": "qos",
         "S": "core-spec", "s": "oversubscribe", "t": "time", "V": "version", "v": "verbose",
         "W": "wait", "w": "nodelist", "x": "exclude"}


def unknown(name: str) -> str | None:
    """Why sbatch does not know the long option ``--name`` (with what was probably meant), or
    None when it does."""
    if name in LONG:
        return None
    if name in SHORT:
        return (f"--{name} is not an sbatch option (-{name} is short for --{SHORT[name]}); "
                f"name the long option: '{SHORT[name].replace('-', '_')}'")
    longer = sorted(o for o in LONG if o.startswith(name))
    if longer:
        return (f"--{name} is not an sbatch option but an abbreviation of --{', --'.join(longer)}"
                "; spell out the option you mean in full")
    close = difflib.get_close_matches(name, sorted(LONG), n=1)
    hint = f" (did you mean --{close[0]}?)" if close else ""
    return (f"--{name} is not an sbatch option{hint}; see `man sbatch` for the options "
            "requirements may name")

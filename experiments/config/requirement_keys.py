"""Catching a misspelled requirement key in a config file before it reaches ``sbatch``.

Every key of ``default_slurm_args`` becomes an sbatch option (``time`` → ``--time``) unless the
framework owns it (``pack``, ``checkpoint_before``, ``setup`` …). ``sbatch`` would refuse a typo
such as ``"tme"`` only at submission, without naming the file it came from. A key that is
neither a known sbatch option nor the framework's, but is close to one, is therefore an error
naming the file, the partition and the key; a key close to nothing is let through (a site's
Slurm plugins add options of their own).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: sbatch's long options (Slurm 22-24), as requirement keys write them ("_" for "-" is fine).
SBATCH_OPTIONS = frozenset("""
account acctg-freq array batch bb bbf begin chdir cluster-constraint clusters comment
constraint container container-id contiguous core-spec cores-per-socket cpu-freq cpus-per-gpu
cpus-per-task deadline delay-boot dependency distribution error exclude exclusive export
export-file extra extra-node-info get-user-env gid gpu-bind gpu-freq gpus gpus-per-node
gpus-per-socket gpus-per-task gres gres-flags hint hold ignore-pbs input job-name
kill-on-invalid-dep licenses mail-type mail-user mcs-label mem mem-bind mem-per-cpu
mem-per-gpu mincpus network nice no-kill no-requeue nodefile nodelist nodes ntasks
ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket open-mode output overcommit
oversubscribe parsable partition power prefer priority profile propagate qos quiet reboot
requeue reservation signal sockets-per-node spread-job switches test-only thread-spec
threads-per-core time time-min tmp tres-per-task uid use-min-nodes verbose wait
wait-all-nodes wckey wrap
""".split())
#: The framework's own requirement keys (and the friendly ``cpus``).
FRAMEWORK = frozenset({"cpus", "max_parallel", "checkpoint_before", "checkpoint_signal",
                       "max_requeues", "pack", "pack_time", "setup"})
_KNOWN = sorted(SBATCH_OPTIONS | FRAMEWORK)


def check_keys(slurm_args: Mapping[str, Any], path: Path) -> None:
    """Raise ``ConfigError`` for a requirement key of ``default_slurm_args`` that is close to a
    known one but is none (a typo), naming the file, the partition and the likely key."""
    for partition, reqs in slurm_args.items():
        for key in reqs if isinstance(reqs, Mapping) else ():
            name = str(key).replace("_", "-")
            if str(key) in FRAMEWORK or name in SBATCH_OPTIONS:
                continue
            close = difflib.get_close_matches(str(key), _KNOWN, n=1, cutoff=0.75)
            if close:
                raise ConfigError(
                    f"{path}: default_slurm_args.{partition}.{key} is neither an sbatch option "
                    f"nor a requirement of the framework; did you mean {close[0]!r}? (sbatch "
                    "would refuse every job of that partition)")

"""What this machine offers the local backend: CPUs, memory and GPUs (by index).

Each figure comes from the ``local`` section of ``config.json`` when set there (the config wins:
it is how a shared box is split, or how tests pretend to have GPUs), and is detected otherwise:
CPUs from the scheduler affinity, memory from ``/proc/meminfo``, GPUs from
``CUDA_VISIBLE_DEVICES`` when set (those very indices), else from ``nvidia-smi -L`` or
``rocm-smi`` when installed. Detection never fails: a missing tool means no GPUs.

A machine that Slurm serves, used outside an allocation, is most likely a shared login node:
:func:`login_node` says why it thinks so, and the local backend then runs at most
:data:`LOGIN_NODE_WORKERS` tasks at once unless ``--workers`` or the config's ``local.cpus``
says otherwise. Slurm counts as serving the machine when a ``slurm.conf`` is found
(``$SLURM_CONF``, or one of :data:`SLURM_CONFS`), which every Slurm client command needs too
(configless clusters without a cached copy are not recognised); being inside an allocation
means ``SLURM_JOB_ID`` is set (``salloc``, ``srun``, ``sbatch``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ... import _proc
from ...resources import Resources

_VISIBLE = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
LOGIN_NODE_WORKERS = 2
SLURM_CONFS = ("/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf",
               "/usr/local/etc/slurm.conf", "/run/slurm/conf/slurm.conf")


@dataclass(frozen=True)
class Capacity:
    """The machine as the scheduler sees it: ``gpu_ids`` are the indices handed out."""

    cpus: int
    mem_mb: int | None
    gpu_ids: tuple[str, ...]
    source: str = "detected"

    @property
    def gpus(self) -> int:
        return len(self.gpu_ids)

    def describe(self) -> str:
        mem = "unknown memory" if self.mem_mb is None else f"{self.mem_mb / 1024:.1f} GB"
        return f"{self.cpus} CPUs, {self.gpus} GPUs, {mem} ({self.source})"

    def misfit(self, res: Resources) -> str:
        """Why ``res`` can never fit on this machine ('' when it can)."""
        if res.cpus > self.cpus:
            return f"asks for {res.cpus} CPUs"
        if res.gpus > self.gpus:
            return f"asks for {res.gpus} GPUs"
        if res.mem_mb is not None and self.mem_mb is not None and res.mem_mb > self.mem_mb:
            return f"asks for {res.mem_mb / 1024:g} GB of memory"
        return ""


def capacity(local: Mapping[str, float]) -> Capacity:
    """The configured figures over the detected ones."""
    cfg = {k: v for k, v in local.items() if v is not None}
    cpus = int(cfg["cpus"]) if "cpus" in cfg else detect_cpus()
    mem_mb = math.floor(cfg["mem_gb"] * 1024) if "mem_gb" in cfg else detect_mem_mb()
    if "gpus" in cfg:
        visible = detect_gpus()
        n = int(cfg["gpus"])
        ids = visible[:n] if len(visible) >= n else tuple(str(i) for i in range(n))
    else:
        ids = detect_gpus()
    given = sorted(k for k in ("cpus", "gpus", "mem_gb") if k in cfg)
    source = f"config.json local: {', '.join(given)}; the rest detected" if given else "detected"
    return Capacity(cpus, mem_mb, ids, source)


def detect_cpus() -> int:
    """CPUs this process may run on (the affinity mask: a container's or taskset's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def detect_mem_mb(meminfo: str = "/proc/meminfo") -> int | None:
    """Total memory in MB, or None where /proc/meminfo is not readable (not Linux)."""
    try:
        with open(meminfo, encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def detect_gpus() -> tuple[str, ...]:
    """GPU indices: a set ``*_VISIBLE_DEVICES`` wins, else what the driver tools list."""
    for var in _VISIBLE:
        value = os.environ.get(var)
        if value is not None:
            return tuple(v.strip() for v in value.split(",") if v.strip() and v.strip() != "-1")
    for argv, pattern in ((["nvidia-smi", "-L"], r"^GPU (\d+):"),
                          (["rocm-smi", "--showid"], r"^GPU\[(\d+)\]")):
        try:
            res = _proc.run(argv, timeout_s=20)
        except (OSError, _proc.ProcTimeout):
            continue
        if res.ok:
            found = dict.fromkeys(re.findall(pattern, res.stdout, re.M))
            return tuple(found)
    return ()


def login_node(env: Mapping[str, str] | None = None,
               confs: Sequence[str] = SLURM_CONFS) -> str | None:
    """Why this looks like a Slurm login node (Slurm's config is here and no ``SLURM_JOB_ID``
    says we are inside an allocation), or None."""
    env = os.environ if env is None else env
    if env.get("SLURM_JOB_ID"):
        return None
    conf = env.get("SLURM_CONF")
    if conf and os.path.isfile(conf):
        return f"SLURM_CONF={conf}"
    return next((c for c in confs if os.path.isfile(c)), None)

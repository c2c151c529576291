"""The site's limits as this user can read them, each read at most once per backend.

Partitions (``scontrol show partition``), the GPUs of their nodes (``scontrol show node``),
QOS (``sacctmgr show qos``), the user's associations (``sacctmgr show assoc``), reservations
(``scontrol show reservation``) and the QOS of live jobs (``squeue``), parsed by
:mod:`.limits`. Read lazily: only a pending reason that needs numbers (:mod:`.pending`) or
``drylaunch --validate`` asks, so an ordinary ``status`` costs nothing more; a ``wait`` keeps
one backend, so its polls read each limit once.

The QOS and association rows (``sacctmgr``, i.e. the accounting database) are also kept in a
file of ours for :data:`ACCOUNTING_TTL_S` (``limits_cache``, in the private experiments home),
keyed on the cluster's config file and the user: limits change rarely, and admins watch
slurmdbd's load. The controller's own copy (``scontrol show assoc_mgr``) is no substitute on
Slurm 22.05: it prints a QOS's per-user limits only under users that have jobs in it.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ... import _atomic
from ...errors import SchedulerQueryError
from . import limits
from .client import SlurmClient
from .parse import QUERY_ID_RE, expand_key

# The accounting rows we read: kind -> sacctmgr's arguments (given the user's name).
ACCOUNTING: dict[str, Callable[[str], list[str]]] = {
    "qos": lambda me: ["show", "qos", f"format={limits.QOS_FORMAT}"],
    "assoc": lambda me: ["show", "assoc", f"user={me}", f"format={limits.ASSOC_FORMAT}"],
}
# How long the QOS and association rows read from sacctmgr are reused from our cache file.
ACCOUNTING_TTL_S = 3600


def cache_file(home: Path) -> Path:
    """Where the accounting rows of the cluster ``$SLURM_CONF`` names are cached."""
    tag = hashlib.sha256(os.environ.get("SLURM_CONF", "").encode()).hexdigest()[:16]
    return home / "cache" / f"slurm-limits-{tag}.json"


class SiteLimits:
    """Cached readers of the site's limits through one client (``cache``: the file keeping
    the accounting rows between commands; None: read them each time they are needed)."""

    def __init__(self, client: SlurmClient, cache: Path | None = None) -> None:
        self.client = client
        self.cache = cache
        self._rows: dict[str, str] | None = None  # sacctmgr's rows by kind, once read
        self._partitions: dict[str, limits.PartitionLimits] | None = None
        self._qos: dict[str, limits.QosLimits] | None = None
        self._node_gpus: dict[str, list[int]] | None = None
        self._assocs: list[limits.AssocLimits] | None = None
        self._reservations: list[limits.Reservation] | None = None
        self._job_qos: dict[str, str] = {}
        self._nodes_text: str | None = None

    def partitions(self) -> dict[str, limits.PartitionLimits]:
        """Partitions and their limits; SchedulerQueryError when they cannot be read."""
        if self._partitions is None:
            out = self.client.ask(["scontrol", "show", "partition", "-o"]).stdout
            self._partitions = limits.parse_partitions(out)
        return self._partitions

    def node_gpus(self) -> dict[str, list[int]] | None:
        """Each partition's GPUs per node from the nodes' GRES (``scontrol show node``); None
        when the nodes cannot be read (then the partitions' TRES is all there is)."""
        if self._node_gpus is None:
            try:
                self._node_gpus = limits.parse_node_gpus(self._nodes())
            except SchedulerQueryError:
                return None
        return self._node_gpus

    def unusable_nodes(self) -> dict[str, list[str]]:
        """Each partition's nodes that cannot run a job now (down, drained, not responding);
        SchedulerQueryError when the nodes cannot be read."""
        return limits.parse_unusable_nodes(self._nodes())

    def _nodes(self) -> str:
        """``scontrol show node -o``, asked once."""
        if self._nodes_text is None:
            self._nodes_text = self.client.ask(["scontrol", "show", "node", "-o"]).stdout
        return self._nodes_text

    def qos_limits(self) -> dict[str, limits.QosLimits]:
        """Every QOS and its limits; {} when accounting cannot be asked."""
        if self._qos is None:
            self._qos = limits.parse_qos(self._accounting_rows("qos"))
        return self._qos

    def associations(self) -> list[limits.AssocLimits]:
        """This user's associations (and their accounts' rows); [] without accounting."""
        if self._assocs is None:
            self._assocs = limits.parse_assocs(self._accounting_rows("assoc"))
        return self._assocs

    def reservations(self) -> list[limits.Reservation]:
        """The cluster's reservations (the client runs scontrol with TZ=UTC, standard times)."""
        if self._reservations is None:
            out = self.client.ask(["scontrol", "show", "reservation", "-o"]).stdout
            self._reservations = limits.parse_reservations(out)
        return self._reservations

    def job_qos(self, job_ids: Sequence[str]) -> dict[str, str]:
        """The QOS each of this user's live jobs runs under, by (array) job id: one squeue for
        the ids not asked about before."""
        ids = sorted({i for i in job_ids if QUERY_ID_RE.fullmatch(i)})
        unknown = [i for i in ids if i not in self._job_qos]
        if unknown:
            result = self.client.ask(["squeue", "--me", "-h", "-j", ",".join(unknown), "-o",
                                      "%F|%q"], allow_invalid_id=True)
            pairs = (line.strip().partition("|") for line in result.stdout.splitlines())
            self._job_qos.update({job: qos for job, sep, qos in pairs if sep and job.isdigit()})
        return {i: self._job_qos[i] for i in ids if i in self._job_qos}

    def live_task_count(self) -> int:
        """How many jobs of this user are pending, running or suspended, each array task
        counted (what MaxSubmitJobsPerUser counts): one squeue, asked each time."""
        out = self.client.ask(["squeue", "--me", "-h", "-r", "-t", "PD,R,S,CG", "-o",
                               "%i"]).stdout
        return sum(len(expand_key(line.strip())) for line in out.splitlines() if line.strip())

    def accounting_cached(self) -> bool:
        """Whether the QOS and association rows are both at hand without asking sacctmgr."""
        return set(ACCOUNTING) <= set(self._rows or self._cached_rows() or {})

    def refresh_accounting(self) -> None:
        """Read the QOS and association rows from sacctmgr now, into the cache (after Slurm
        refused a submission at the submit limit: the next launch then packs itself)."""
        self._rows, self._qos, self._assocs = {}, None, None
        for kind in ACCOUNTING:
            self._accounting_rows(kind)

    def _accounting_rows(self, kind: str) -> str:
        """sacctmgr's rows of ``kind`` ("qos" or "assoc"): from memory, our cache file while it
        is younger than ACCOUNTING_TTL_S, else asked (cached once both kinds answered)."""
        if self._rows is None:
            self._rows = self._cached_rows() or {}
        if kind not in self._rows:
            args = ACCOUNTING[kind](pwd.getpwuid(os.getuid()).pw_name)
            got = self._accounting(args)
            self._rows[kind] = got or ""
            if got is not None and self.cache is not None and set(ACCOUNTING) <= set(self._rows):
                self._write_cache(self.cache, self._rows)  # both fresh: keep them together
        return self._rows[kind]

    def _cache_key(self) -> str:
        """What the cached rows are valid for: this cluster (its config file) and this user."""
        return f"{os.environ.get('SLURM_CONF', '')}|{os.getuid()}|{limits.QOS_FORMAT}|" \
               f"{limits.ASSOC_FORMAT}"

    def _cached_rows(self) -> dict[str, str] | None:
        """The cached rows when the file is ours, for this cluster and user, and fresh."""
        if self.cache is None:
            return None
        data = _atomic.read_own_json(str(self.cache))
        try:
            age = time.time() - float(data["at"])
            if data["key"] != self._cache_key() or not 0 <= age < ACCOUNTING_TTL_S:
                return None
            return {kind: str(data[kind]) for kind in ACCOUNTING}
        except (ValueError, KeyError, TypeError):
            return None

    def _write_cache(self, path: Path, rows: dict[str, str]) -> None:
        """Keep the rows for the next commands (best effort: a cache is never required)."""
        _atomic.keep_json(str(path), {"key": self._cache_key(), "at": time.time(), **rows})

    def _accounting(self, args: Sequence[str]) -> str | None:
        try:
            return self.client.ask(["sacctmgr", "-n", "-P", *args]).stdout
        except SchedulerQueryError:
            return None

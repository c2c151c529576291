"""The site's limits as this user can read them, each read at most once per backend.

Partitions (``scontrol show partition``), the GPUs of their nodes (``scontrol show node``),
QOS (``sacctmgr show qos``), the user's associations (``sacctmgr show assoc``), reservations
(``scontrol show reservation``) and the QOS of live jobs (``squeue``), parsed by
:mod:`.limits`. Read lazily: only a pending reason that needs numbers (:mod:`.pending`) or
``drylaunch --validate`` asks, so an ordinary ``status`` costs nothing more; a ``wait`` keeps
one backend, so its polls read each limit once.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Sequence

from ...errors import SchedulerQueryError
from . import limits
from .client import SlurmClient
from .parse import QUERY_ID_RE, expand_key


class SiteLimits:
    """Cached readers of the site's limits through one client."""

    def __init__(self, client: SlurmClient) -> None:
        self.client = client
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
            self._qos = limits.parse_qos(self._accounting(
                ["show", "qos", f"format={limits.QOS_FORMAT}"]))
        return self._qos

    def associations(self) -> list[limits.AssocLimits]:
        """This user's associations (and their accounts' rows); [] without accounting."""
        if self._assocs is None:
            me = pwd.getpwuid(os.getuid()).pw_name
            self._assocs = limits.parse_assocs(self._accounting(
                ["show", "assoc", f"user={me}", f"format={limits.ASSOC_FORMAT}"]))
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

    def _accounting(self, args: Sequence[str]) -> str:
        try:
            return self.client.ask(["sacctmgr", "-n", "-P", *args]).stdout
        except SchedulerQueryError:
            return ""

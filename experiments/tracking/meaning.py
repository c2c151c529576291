"""What each artifact state means, in one sentence each: the one source of the report's legend
and of docs/states.md ("What each state means"), which ``status --help`` points to; a test
checks that page against this table, so the two never say different things."""

from __future__ import annotations

from .status import ArtifactState

#: State → what it means (docs/states.md shows the same sentences).
MEANING = {
    ArtifactState.BUILT: "its done marker exists and it is what the experiment describes today",
    ArtifactState.STALE: "built, but the experiment now describes something else (its "
                         "parameters, a dependency's build or, optionally, its code changed "
                         "since; the reason says which): `accept` declares it current, `launch "
                         "--rebuild-stale` rebuilds it",
    ArtifactState.RUNNING: "a task is building it now",
    ArtifactState.QUEUED: "waiting to start: in the scheduler's queue, for its dependencies, "
                          "for free GPUs, or behind the artifacts before it in its pack",
    ArtifactState.FAILED: "its last attempt ended without a done marker: a step failed, or the "
                          "scheduler ended it (time limit, memory, node failure)",
    ArtifactState.DEP_FAILED: "not attempted: a dependency failed, so it could not be built",
    ArtifactState.MODIFIED: "built, but another account could have changed it since: its folder "
                            "(or one above it) is not safely yours, or a file in it belongs to "
                            "another account or changed after the done marker; nothing builds "
                            "on it",
    ArtifactState.CANCELLED: "its task was cancelled before it finished (by you, an admin or "
                             "another user)",
    ArtifactState.ELSEWHERE: "its job was submitted on another Slurm cluster sharing this home: "
                             "it is not asked about (nor cancelled, nor resubmitted) from here; "
                             "run the command on a login node of that cluster",
    ArtifactState.UNKNOWN: "submitted and not built, but the scheduler no longer knows the task "
                           "(or could not be asked)",
    ArtifactState.SUBMITTING: "a launch recorded its job, but the scheduler has not confirmed "
                              "it yet",
    ArtifactState.NOT_STARTED: "never submitted into this root (or its done marker was moved "
                               "aside since): `launch` builds it",
}

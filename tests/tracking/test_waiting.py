"""Why queued tasks wait, grouped (experiments.tracking.waiting): one line per stage, reason and
hint, never-clearing reasons first."""

from __future__ import annotations

from experiments.states import Outlook
from experiments.tracking.status import ArtifactState, TaskView
from experiments.tracking.waiting import WaitGroup, group, short

TIME = "the gpu partition allows 12:00:00, the artifact asks 24:00:00; lower `time`"


def _queued(reason: str, hint: str, outlook: Outlook | None, i: int = 0) -> TaskView:
    return TaskView("7", i, f"A/i={i}", ArtifactState.QUEUED, hint, reason=reason,
                    outlook=outlook)


def test_groups_count_tasks_per_stage_and_reason_never_clearing_first() -> None:
    views = [("train", _queued("Priority", "other jobs are ahead", Outlook.CLEARS, i))
             for i in range(5)]
    views += [("train", _queued("PartitionTimeLimit", TIME, Outlook.NEVER, i)) for i in range(2)]
    views += [("eval", _queued("NodeDown", "a node is down", Outlook.UNKNOWN))]
    views += [("eval", _queued("", "", None)),  # no reason given: not a group
              ("eval", TaskView("7", 9, "B", ArtifactState.RUNNING, reason="Priority",
                                outlook=Outlook.CLEARS))]  # not queued
    groups = group(views)
    assert [(g.stage, g.reason, g.count) for g in groups] == [
        ("train", "PartitionTimeLimit", 2), ("eval", "NodeDown", 1), ("train", "Priority", 5)]
    assert groups[0].text == f"2 queued: PartitionTimeLimit — {TIME} (never clears on its own)"
    assert groups[1].text.endswith("(may not clear on its own)")
    assert groups[2].text == "5 queued: Priority — other jobs are ahead"
    assert groups[0].as_dict()["never_clears"] is True
    assert short(groups) == ("2 PartitionTimeLimit (never clears on its own), 1 NodeDown "
                             "(may not clear on its own), 5 Priority")


def test_the_same_reason_with_different_hints_stays_apart_and_short_sums_stages() -> None:
    a = [("a", _queued("PartitionTimeLimit", TIME, Outlook.NEVER, i)) for i in range(3)]
    b = [("b", _queued("PartitionTimeLimit", TIME.replace("gpu", "short"), Outlook.NEVER))]
    groups = group(a + b)
    assert [g.count for g in groups] == [3, 1]
    assert short(groups) == "4 PartitionTimeLimit (never clears on its own)"
    assert WaitGroup("s", "BeginTime", "", Outlook.CLEARS, 1).text == "1 queued: BeginTime"

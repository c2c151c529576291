"""``efficiency``: what finished tasks used against what they asked for, and who wastes most."""

from __future__ import annotations

import pytest


def test_efficiency_math_and_who_wastes_most() -> None:
    from experiments.verbs.efficiency import StageEfficiency, TaskEfficiency

    busy = TaskEfficiency("1_0", "A/busy", "COMPLETED", 3600, 7200, 4, 4 * 3600 * 0.9,
                          3000.0, 4000)
    idle = TaskEfficiency("1_1", "A/idle", "COMPLETED", 3600, 7200, 4, 3600.0, None, 4000)
    assert busy.time_used == 0.5 and busy.cpu_efficiency == pytest.approx(0.9)
    assert busy.mem_used == 0.75 and idle.cpu_efficiency == 0.25 and idle.mem_used is None
    stage = StageEfficiency("a", [busy, idle])
    assert [t.relpath for t in stage.worst(1)] == ["A/idle"]  # 3 CPU-hours unused
    assert stage.requested_h == 4.0 and stage.peak_mem_mb == 3000.0
    assert stage.mean("cpu_efficiency") == pytest.approx(0.575)

"""Fitting a launch under the submit limit: which limit applies (from the policed cluster's own
sacctmgr output) and the smallest pack that fits."""

from __future__ import annotations

from pathlib import Path

from experiments.backends.slurm.layout import Allowance, allowance_for, fit_packs
from experiments.backends.slurm.limits import parse_assocs, parse_qos
from experiments.plan.packs import pack_count

DATA = Path(__file__).resolve().parent / "data"
ASSOCS = parse_assocs((DATA / "policed_sacctmgr_show_assoc.txt").read_text())
QOS = parse_qos((DATA / "policed_sacctmgr_show_qos.txt").read_text())
MINE = [a for a in ASSOCS if a.user == "expuser1"]  # what `show assoc user=expuser1` gives


def test_the_qos_limit_applies_under_every_account() -> None:
    got = allowance_for(MINE, QOS, 30, "physics")
    assert got == Allowance(70, "MaxSubmitJobsPerUser=100 of QOS normal", 30)
    # chemistry's association says MaxSubmitJobs=50, but QOS normal's 100 overrides it
    assert allowance_for(MINE, QOS, 30, "chemistry") == got
    assert allowance_for(MINE, QOS, 30, None, "high") == Allowance(
        0, "MaxSubmitJobsPerUser=20 of QOS high", 30)
    assert allowance_for(MINE, QOS, 130) == Allowance(0, got.limit, 130)


def test_no_limit_no_association() -> None:
    assert allowance_for(MINE, {}, 0, "chemistry") == Allowance(
        50, "MaxSubmitJobs=50 of account chemistry", 0)
    assert allowance_for(MINE, {}, 0, "physics") is None  # neither sets a submit limit
    assert allowance_for(MINE, QOS, 0, "biology") is None  # no such association of mine


def test_the_smallest_pack_that_fits() -> None:
    allowance = Allowance(100, "MaxSubmitJobsPerUser=100 of QOS normal", 0)
    fit = fit_packs(lambda p: pack_count(500, p), 500, 500, allowance, 500)
    assert (fit.pack, fit.tasks) == (5, 100)
    assert fit.note == (
        "500 array task(s) would exceed your remaining submit allowance of 100 "
        "(MaxSubmitJobsPerUser=100 of QOS normal; 0 of your jobs queued or running): packed up "
        "to 5 artifact(s) per task, 100 task(s)")
    two_groups = fit_packs(lambda p: pack_count(301, p) + pack_count(200, p), 501, 501,
                           allowance, 301)
    assert (two_groups.pack, two_groups.tasks) == (6, 51 + 34)  # 5 gives 61 + 40 = 101
    capped = fit_packs(lambda p: pack_count(500, min(p, 4)), 500, 500, allowance, 4)
    assert capped.pack is None and "even packed as far as" in capped.note
    full = fit_packs(lambda p: pack_count(500, p), 500, 500, Allowance(0, "x", 100), 500)
    assert full.pack is None and "wait for some of your jobs to end" in full.note

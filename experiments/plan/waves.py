"""Waves: the part of a plan that fits the user's submit allowance, submitted first.

A launch with more tasks than the site lets one user queue is cut into *waves*: the first
wave takes tasks in dependency order (tier by tier, group by group) up to the room left, so
every task in it depends only on tasks in it, built or queued. A relay queued after the wave
plans again when it ends: what the wave built is skipped, and the next wave fits the room
freed. Pure.
"""

from __future__ import annotations

import dataclasses

from .model import Group, Plan


def first_wave(plan: Plan, room: int) -> Plan:
    """The first ``room`` tasks of ``plan`` in dependency order (``plan`` if it fits)."""
    if room < 1:
        raise ValueError("a wave needs room for at least one task")
    if plan.task_count <= room:
        return plan
    tiers: list[tuple[Group, ...]] = []
    left = room
    for tier in plan.tiers:
        kept: list[Group] = []
        for group in tier:
            if left <= 0:
                break
            take = group.tasks[:left]
            kept.append(group if len(take) == len(group.tasks)
                        else dataclasses.replace(group, tasks=take))
            left -= len(take)
        if kept:
            tiers.append(tuple(kept))
        if left <= 0:
            break
    return dataclasses.replace(plan, tiers=tuple(tiers))


def waves_needed(tasks: int, room: int) -> int:
    """How many waves ``tasks`` take at ``room`` tasks per wave (at least one)."""
    return max(1, -(-tasks // max(1, room)))

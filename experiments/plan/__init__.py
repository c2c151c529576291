"""Planning: from stages of artifacts to tiers of requirement groups (pure data, no I/O)."""

from .graph import build_plan, chunk
from .model import Group, Plan, PlannedTask, Skipped

__all__ = ["Group", "Plan", "PlannedTask", "Skipped", "build_plan", "chunk"]

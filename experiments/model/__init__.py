"""The artifact model: artifacts, identity, sets, the task builder, selection by parameters."""

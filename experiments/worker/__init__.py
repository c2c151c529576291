"""What runs inside a job on the building machine: task specs, build, packs, locks, provenance."""

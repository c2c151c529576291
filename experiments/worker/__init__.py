"""What runs inside a job on the building machine: build, packs, locking, setup, provenance."""

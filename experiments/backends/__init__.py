"""Backends turn a plan into running work: local processes or Slurm array jobs."""

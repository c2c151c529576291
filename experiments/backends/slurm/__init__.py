"""The Slurm backend: options, batch-script rendering, the command client, and their composition."""

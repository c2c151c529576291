"""The local backend: worker processes on this machine in dependency order."""

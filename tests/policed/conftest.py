"""Fixtures for running the experiment's CLI as an unprivileged test user: ``user_python``
(shared with the ``--on`` tests) lives in tests/_slurm.py beside ``test_users``."""

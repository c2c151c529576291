"""What the tests share, so no test module imports another.

- ``cli``: running the CLI in-process over an executor, or an experiment file as a process;
- ``experiments``: ``Node``/``FakeExecutor``, the two- and three-tier Slurm experiment files,
  the README's grid; ``report_grid``: the report's grid with every shape it shows;
- ``hostile``: the one list of hostile strings;
- ``worker``: specs written by hand and the worker run on them as a task runs it;
- ``slurm``: wrapped Slurm commands, queue waits, the three-tier set-up, sbatch's parser model;
- ``slurm_cluster`` and ``gcs``: pytest plugins (loaded by tests/conftest.py) that start the
  test Slurm clusters and the GCS emulator; ``strace``: syscall faults; ``browser``: Chromium.
"""

"""The Slurm backend, one question per module: ``backend`` (the protocol methods, composing the
rest), ``client`` (running Slurm's commands: retries, lookups), ``parse`` (reading their answers,
pure), ``layout`` (which arrays a launch submits: packs, the submit allowance, MaxJobCount),
``validate`` (what drylaunch says about a group and the limits it exceeds), ``sbatch_options``
and ``script`` (the batch script), ``budget`` (``--max-running`` over arrays), ``deps``,
``pending``/``reasons`` (why a task waits), ``limits``/``site_limits`` (the site's limits)."""

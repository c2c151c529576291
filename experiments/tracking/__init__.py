"""What is true now: the job store, done markers, task and artifact states, staleness, results."""

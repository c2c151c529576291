"""Around a submission: the launch context, intents and records, task specs, code snapshots."""

"""Around a submission: the launch context, intents and records, code snapshots, relays."""

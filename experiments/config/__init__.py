"""config.json: built-in defaults, the site file and the user's file, merged and validated."""

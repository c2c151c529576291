"""Hostile strings run through every path that renders a path, a command or a script."""

from __future__ import annotations

# Strings that have broken path, shell and script rendering elsewhere.
HOSTILE: list[str] = [
    "a'; touch /tmp/x",
    "$(id)",
    "`id`",
    "a\n#SBATCH --wrap=x",
    "--output=/etc/x",
    "a\x00b",
    "x" * 300,
    "é" * 200,  # 400 bytes of UTF-8
    "../..",
    "..",
    ".",
    "/etc/passwd",
    "a/b/../../c",
    "ünïcødé 模型 🚀",
    "quote\"s and 'single'",
    "  spaces  ",
    "",
    "-",
    "back\\slash",
    "tab\there",
    "\r\n",
    "*?[a-z]{1,2}~",
    "!!python/object/apply:os.system ['id']",
]
# The ones a command line can carry (no NUL byte).
HOSTILE_NO_NUL = [s for s in HOSTILE if "\x00" not in s]

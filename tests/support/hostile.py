"""Hostile strings: the one list every test of rendering, quoting or naming runs through.

Each string has broken a path, a shell command, a batch script, sbatch's own option parser or
an HTML page somewhere. Strings meant to run something touch ``/tmp/x``; :func:`aimed_at`
points them at a canary file of the test's own, so the test can tell that nothing ran.
"""

from __future__ import annotations

CANARY = "/tmp/x"  # what the strings below try to create; see aimed_at
SCRIPT_TAG = "<script>alert(1)</script>"
IMG_TAG = "<img src=x onerror=\"window.__pwned=1\">"

HOSTILE: list[str] = [
    # shell and batch-script injection
    "a'; touch /tmp/x",
    "$(touch /tmp/x)",
    "`touch /tmp/x`",
    "$(id)",
    "`id`",
    "a\n#SBATCH --wrap=x",
    "--output=/etc/x",
    "a\x00b",
    "!!python/object/apply:os.system ['id']",
    # sizes and encodings
    "x" * 300,
    "é" * 200,  # 400 bytes of UTF-8
    "ünïcødé 模型 🚀",
    "ünïcødé ✓",
    "日本語",
    "a\u2028b",
    # paths
    "../..",
    "..",
    ".",
    "/etc/passwd",
    "a/b/../../c",
    "../../../../tmp/x",
    # quoting and whitespace
    "quote\"s and 'single'",
    "  spaces  ",
    "",
    "-",
    "back\\slash",
    "tab\there",
    "\r\n",
    "*?[a-z]{1,2}~",
    # sbatch's own parser (an unquoted # ends the line, whitespace splits, % is a pattern)
    "a#b",
    "a b",
    "\\",
    '"',
    "'",
    "$HOME ${X:-y}",
    "x hetjob y",
    "trail ",
    "%A_%a",
    "semi;colon|pipe&amp",
    # markup, for the report's pages
    SCRIPT_TAG,
    IMG_TAG,
]
# The ones a command line can carry (no NUL byte).
HOSTILE_NO_NUL = [s for s in HOSTILE if "\x00" not in s]


def aimed_at(canary: str) -> list[str]:
    """The NUL-free strings, each one that would create a file creating ``canary`` instead."""
    return [s.replace(CANARY, canary) for s in HOSTILE_NO_NUL]

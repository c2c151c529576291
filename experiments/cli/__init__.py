"""The command line: click commands in ``main``, rich rendering in ``render``."""

"""The remote tests' fixtures: a laptop account and a cluster account behind a private sshd
(see tests/support/remote_site.py)."""

from tests.support.remote_site import laptop_alias, site

__all__ = ["laptop_alias", "site"]

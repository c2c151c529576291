"""``--on``: every way a first contact fails gets its own message, saying what to do.

Real parts: the laptop user's ssh with host aliases whose known hosts or key are wrong, the
private sshd, and a cluster Python without the package.
"""

from __future__ import annotations

import pytest

from tests.support.remote_site import CLUSTER, LAPTOP, Site, ours, write_as

pytestmark = pytest.mark.slurm

EXPERIMENT = '''
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, SlurmExecutor, Task

@dataclass(frozen=True)
class Thing(Artifact):
    n: int

    def construct(self, builder: Task):
        builder.run_command("true")

executor = SlurmExecutor(project="contact")
executor.stage("things", ArtifactSet.from_product(cls=Thing, params={"n": [1]}))

if __name__ == "__main__":
    executor.auto_cli()
'''


@pytest.fixture
def contact(site: Site) -> Site:
    write_as(site.code / "exp.py", EXPERIMENT, LAPTOP)
    bare = site.cluster / "bin" / "bare-python"  # a Python that does not see the package
    write_as(bare, "#!/bin/sh\nexec /usr/bin/python3 -I \"$@\"\n", CLUSTER, 0o755)
    alias = site.alias
    site.remotes(bare={"python": str(bare)}, unknown={"ssh": f"{alias}-unknown"},
                 changed={"ssh": f"{alias}-changed"}, nokey={"ssh": f"{alias}-nokey"},
                 noroot={"code_root": str(site.cluster / "missing")})
    return site


@pytest.mark.parametrize("remote, message", [
    ("bare", "has no experiments package; install it there: ssh {alias} {bare} -m pip install "
             "'slurm-experiments=="),
    ("unknown", "the host key of {alias}-unknown (remote 'unknown') is not known yet and there "
                "was no terminal to ask you: check and accept it once with `ssh "
                "{alias}-unknown true`"),
    ("changed", "the host key of {alias}-changed (remote 'changed') is not the one your "
                "known_hosts holds"),
    ("nokey", "{alias}-nokey refused the login (remote 'nokey'): "),
    ("noroot", "code_root {root} does not exist on {alias} (remote 'noroot'); create it there "
               "(ssh {alias} mkdir -p {root})"),
])
def test_a_failed_first_contact_says_what_to_do(contact: Site, remote: str, message: str
                                                ) -> None:
    logins = contact.sshd.logins()
    res = contact.laptop("status", "--on", remote)
    expected = message.format(alias=contact.alias, bare=contact.cluster / "bin" / "bare-python",
                              root=contact.cluster / "missing")
    assert res.returncode == 255, res.stdout + res.stderr
    assert res.stderr.startswith("error: " + expected) or expected in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr  # one message, no traceback
    logged_in = remote in ("bare", "noroot")
    assert contact.sshd.logins() == logins + logged_in
    assert [p for p in ours(LAPTOP) + ours(CLUSTER) if "experiments" in p] == []

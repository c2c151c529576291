"""The seam's declared capabilities: which backend offers which, and DESIGN.md names them all.

The verbs find an optional capability with ``isinstance`` on the protocols of
experiments/backends/base.py, so a backend that offers one must match its protocol, and a
backend that does not must not look as if it did.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from experiments.backends import base
from experiments.backends.fake import FakeBackend
from experiments.backends.local.machine import LocalBackend
from experiments.backends.slurm.backend import SlurmBackend
from experiments.backends.slurm.client import SlurmClient
from experiments.config import settings

REPO = Path(__file__).resolve().parents[2]
CAPABILITIES = (base.SubmissionTracking, base.LaysOutArrays, base.KeepsAccounts,
                base.WarnsAboutSite)


def _protocols() -> list[type]:
    return [c for _, c in inspect.getmembers(base, inspect.isclass)
            if getattr(c, "_is_protocol", False) and c.__module__ == base.__name__]


def _methods(protocol: type) -> set[str]:
    return {n for n, v in vars(protocol).items() if inspect.isfunction(v) and not n.startswith("_")}


def test_every_optional_capability_is_declared_and_checkable() -> None:
    assert set(_protocols()) == {base.Backend, *CAPABILITIES}
    for protocol in CAPABILITIES:  # isinstance works on them, as the verbs use them
        assert getattr(protocol, "_is_runtime_protocol", False), protocol


@pytest.mark.parametrize(("backend", "offers"), [
    (lambda: SlurmBackend(settings.load(), SlurmClient()),
     {base.SubmissionTracking, base.LaysOutArrays, base.KeepsAccounts}),
    (lambda: LocalBackend(1, settings.load()), {base.WarnsAboutSite}),
    (FakeBackend, set()),
], ids=["slurm", "local", "fake"])
def test_each_backend_offers_what_it_declares(backend: object, offers: set[type]) -> None:
    made = backend()  # type: ignore[operator]
    assert {c for c in CAPABILITIES if isinstance(made, c)} == offers
    for protocol in offers:  # with the protocol's signatures, not just its names
        for name in _methods(protocol):
            theirs = inspect.signature(getattr(made, name)).parameters
            ours = inspect.signature(getattr(protocol, name)).parameters
            assert list(theirs) == [p for p in ours if p != "self"], (protocol, name)


def test_design_names_every_method_a_backend_may_offer() -> None:
    text = (REPO / "DESIGN.md").read_text(encoding="utf-8")
    section = re.search(r"^## Adding a backend\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, "DESIGN.md has no 'Adding a backend' section"
    missing = [f"{p.__name__}.{m}" for p in _protocols() for m in sorted(_methods(p))
               if f"`{m}" not in section.group(1)]
    missing += [p.__name__ for p in CAPABILITIES if f"`{p.__name__}`" not in section.group(1)]
    assert missing == []

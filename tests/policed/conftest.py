"""Fixtures for running the experiment's CLI as an unprivileged test user: ``user_python``
(shared with the ``--on`` tests) lives in tests/_slurm.py beside ``test_users``;
``make_project`` makes the waves and relay-fault scenarios' projects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.policed_project import Factory, project_factory
from tests.support.slurm_cluster import PolicedCluster


@pytest.fixture
def make_project(policed_cluster: PolicedCluster, user_python: tuple[str, str]
                 ) -> Iterator[Factory]:
    """Projects of the first test user (see ``project_factory``), cleaned up afterwards."""
    with project_factory(policed_cluster, user_python) as make:
        yield make

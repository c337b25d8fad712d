"""PostgreSQL for the tests: one private cluster per test process, one new database per test.

The cluster (initdb + pg_ctl in a temporary folder, 127.0.0.1 on a free port) starts on first use
and is stopped and deleted at the end of the session. Tests that need it are skipped only when
PostgreSQL is not installed and NEWSLETTER_REQUIRE_POSTGRES is unset (CI sets it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.fakes.pgcluster import Cluster, find_bin_dir


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        if os.environ.get("NEWSLETTER_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL (initdb, pg_ctl) is not installed: apt-get install postgresql")
        pytest.skip("PostgreSQL is not installed (set NEWSLETTER_REQUIRE_POSTGRES=1 to fail)")
    cluster = Cluster(bin_dir)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """The URL of a new, empty database of its own."""
    return pg_cluster.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A store on each backend: a SQLite file in tmp_path, then a new PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "n.db"
    return str(request.getfixturevalue("pg_url"))

"""Shared pytest fixtures and options."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden files from the current output (review the diff!)",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def project_root() -> Path:
    return ROOT


# PostgreSQL: a private cluster per test process (pg_cluster), a database per test (pg_url), and
# store_target, parametrized over both backends
from pg_fixtures import pg_cluster, pg_url, store_target  # noqa: E402, F401

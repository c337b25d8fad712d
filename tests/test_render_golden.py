"""Golden files: the example site renders to the checked-in email.html and email.txt.

Regenerate on purpose with ``make golden`` (``pytest --update-golden``) and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main

GOLDEN = Path(__file__).parent / "golden" / "email"
NOW = "2026-11-01T09:00:00"
CASES = {
    "digest": ["--month", "2026-10"],
    "post": ["--post", "2026-10-05-conference-wrap-up"],
}


@pytest.mark.parametrize("layout", sorted(CASES))
def test_example_site_matches_golden(
    layout: str, tmp_path: Path, project_root: Path, update_golden: bool
) -> None:
    args = [
        "--config",
        str(project_root / "newsletter.toml"),
        "render",
        *CASES[layout],
        "--now",
        NOW,
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("email.html", "email.txt"):
        produced = (tmp_path / name).read_text(encoding="utf-8")
        expected_path = GOLDEN / layout / name
        if update_golden:
            expected_path.parent.mkdir(parents=True, exist_ok=True)
            expected_path.write_text(produced, encoding="utf-8")
            continue
        assert expected_path.exists(), f"{expected_path} missing: run `make golden`"
        expected = expected_path.read_text(encoding="utf-8")
        assert produced == expected, f"{layout}/{name} differs from the golden file"

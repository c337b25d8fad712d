"""Golden pairs per reader: ``tests/golden/readers/<file>`` beside ``<file>.json``, what the
reader for its extension makes of it (metadata, body, where the body starts, the file's syntax,
the reader's warnings). A missing or different expectation fails; ``pytest --update-golden``
rewrites them."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from newsletter.content.readers import READERS, reader_for

READERS_DIR = Path(__file__).parent / "golden" / "readers"
CASES = sorted(p.name for p in READERS_DIR.iterdir() if not p.name.endswith(".json"))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("case", CASES)
def test_reader_golden(case: str, update_golden: bool) -> None:
    path = READERS_DIR / case
    reader = reader_for(case)
    assert reader is not None
    doc = reader.read(path.read_text("utf-8"), path)
    got = {
        "reader": reader.name,
        "syntax": doc.syntax.name,
        "has_metadata": doc.has_metadata,
        "metadata": _plain(doc.metadata),
        "title_line": doc.key_line("title"),
        "body_line": doc.body_line,
        "body_format": doc.body_format,
        "body": doc.body,
        "notes": [list(n) for n in doc.notes],
    }
    expected_path = READERS_DIR / f"{case}.json"
    if update_golden:
        expected_path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", "utf-8")
    assert expected_path.exists(), f"no expectation {expected_path}; run pytest --update-golden"
    assert got == json.loads(expected_path.read_text("utf-8"))


def test_every_reader_has_a_golden_case() -> None:
    names = {reader_for(case).name for case in CASES}  # type: ignore[union-attr]
    assert names == {r.name for r in READERS.values()}

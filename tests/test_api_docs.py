"""The Python API page's example runs as written, and the public names are what it promises."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import newsletter

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


def test_the_monthly_send_script_runs_against_the_example_site(tmp_path: Path) -> None:
    (script,) = _python_blocks(ROOT / "docs" / "api.md")
    assert len(script.strip().splitlines()) <= 17
    site = tmp_path / "site"
    site.mkdir()
    for name in ("content", "templates"):
        shutil.copytree(ROOT / name, site / name)
    for name in ("newsletter.toml", "subscribers.example.csv"):
        shutil.copy(ROOT / name, site / name)
    (site / "send.py").write_text(script, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "send.py"], cwd=site, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^campaign 2026-10-[0-9a-f]{10}: done$", proc.stdout, re.M), proc.stdout
    outbox = list((site / "outbox").glob("2026-10-*/*.eml"))
    assert len(outbox) == 20  # the example list, once each, though send() was called twice


def test_every_public_name_resolves_and_errors_import_cheaply() -> None:
    for name in newsletter.__all__:
        assert getattr(newsletter, name) is not None
    code = "import sys, newsletter.errors; print('newsletter.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_holds_no_store_or_transport_rules() -> None:
    """`cli/` parses flags and prints: campaign rules, the store and transports stay below it."""
    # top-level and indented (lazy, inside a function) imports alike
    banned = re.compile(
        r"^[ \t]*(?:from|import)[ \t]+newsletter\.(?:campaign|transports|store|providers)\b",
        re.M,
    )
    offenders = [
        f"{path.name}: {m.group(0).strip()}"
        for path in (ROOT / "newsletter" / "cli").glob("*.py")
        for m in banned.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []

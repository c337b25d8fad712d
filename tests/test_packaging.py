"""The wheel carries what an installed `newsletter` needs: the default templates and assets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_wheel_renders_an_issue_with_its_own_default_templates(tmp_path: Path) -> None:
    # built from a copy: a build/ folder left in the checkout must not supply stale files
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("newsletter", "templates"):
        shutil.copytree(ROOT / part, src / part, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, src / part)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("newsletter-*.whl")
    installed = tmp_path / "installed"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(installed)
    for name in ("digest.mjml.j2", "post.txt.j2", "partials/footer.mjml.j2"):
        assert f"newsletter/default_templates/{name}" in names
    assert "newsletter/web/preview_assets/preview.js" in names
    assert "newsletter/transports/templates/outbox_index.html.j2" in names

    # a site with posts and settings but no templates/ folder: the defaults come from the wheel
    site = tmp_path / "site"
    shutil.copytree(ROOT / "content", site / "content")
    shutil.copy(ROOT / "newsletter.toml", site / "newsletter.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "NEWSLETTER_"))}
    env["PYTHONPATH"] = str(installed)  # ahead of the editable install in the venv
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import newsletter.templating as t; print(t.default_templates_dir())",
        ],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip() == str(installed / "newsletter" / "default_templates")
    render = subprocess.run(
        [
            sys.executable,
            "-m",
            "newsletter",
            "render",
            "--month",
            "2026-10",
            "--now",
            "2026-11-01T09:00",
            "--out",
            "out",
        ],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert render.returncode == 0, render.stderr[-2000:]
    html = (site / "out" / "email.html").read_text(encoding="utf-8")
    assert "<html" in html and "unsubscribe" in html.lower()

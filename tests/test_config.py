"""Settings: newsletter.toml, overrides, and one clear message for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import load_secrets, load_settings
from newsletter.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_paths_resolve_against_the_config_folder_and_flags_override(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[site]\nurl = "https://a.example.org"\ncontent = ["posts", "more"]\n'
        '[store]\npath = "data/n.db"\n',
    )
    settings = load_settings(path, overrides={"site.url": "https://b.example.org"})
    assert settings.site.url == "https://b.example.org"
    assert settings.content_dirs == [tmp_path.resolve() / "posts", tmp_path.resolve() / "more"]
    assert settings.db_path == tmp_path.resolve() / "data" / "n.db"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[site]\nurl = 'https://x.org'\nname = \n", "not valid TOML"),
        ("[site]\nnmae = 'x'\n", "site.nmae: unknown setting; known settings in [site] are"),
        ("[sending]\n", "sending: unknown section"),
        ("[send]\nconcurrency = 'four'\n", "send.concurrency: expected a number"),
        ("[site]\ntimezone = 'Mars/Base'\n", "site.timezone: unknown time zone 'Mars/Base'"),
        ("[site]\nurl = 'example.org'\n", "site.url: site URL 'example.org' must start with"),
        (
            "[unsubscribe]\nbase_url = 'https://x.org/u?a=1&b=2'\n",
            "unsubscribe.base_url: unsubscribe base URL",
        ),
    ],
)
def test_each_mistake_names_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    line = caught.value.format()
    assert line.startswith(str(path)), line
    assert message in line
    assert caught.value.exit_code == 2


def test_a_missing_config_file_given_on_purpose_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")
    # without --config, no file simply means defaults
    assert load_settings(None, cwd=tmp_path).site.name == "My Site"


def test_secrets_come_from_the_environment_and_never_show() -> None:
    secrets = load_secrets({"SENDGRID_API_KEY": "SG.very-secret", "NEWSLETTER_SECRET": "s3cr3t"})
    assert secrets.sendgrid_api_key == "SG.very-secret"
    shown = repr(secrets) + str(secrets)
    assert "very-secret" not in shown and "s3cr3t" not in shown
    assert load_secrets({}).sendgrid_api_url == "https://api.sendgrid.com"

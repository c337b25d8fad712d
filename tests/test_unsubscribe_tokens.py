"""Unsubscribe tokens: round trip, forgery resistance, headers, and the signing secret."""

from __future__ import annotations

import base64
import hmac
import os
import random
import stat
from pathlib import Path

import pytest

from newsletter.config import Secrets
from newsletter.errors import SecretMissing
from newsletter.unsubscribe import (
    InvalidToken,
    UnsubscribeLinks,
    list_unsubscribe_headers,
    make_token,
    signing_secret,
    token_matches_email,
    unsubscribe_url,
    verify_token,
)

SECRET = "k4Zb3QmT2r0-test-secret-not-for-production"


@pytest.mark.parametrize("sid", [1, 127, 128, 300, 2**20, 2**31 - 1, 10**12])
def test_round_trip_keeps_id_and_binds_the_address(sid: int) -> None:
    token = make_token(SECRET, sid, "Ann.Lee@Example.org")
    claims = verify_token(SECRET, token)
    assert claims.subscriber_id == sid
    assert token_matches_email(SECRET, claims, "ann.lee@example.org")  # case-insensitive
    assert not token_matches_email(SECRET, claims, "ann.lee@example.com")
    assert len(token) <= 32
    assert all(c.isalnum() or c in "-_" for c in token)


@pytest.mark.parametrize(
    ("secret", "sid", "address"),
    [(SECRET, 1, "a@b.org"), ("s" * 100, 300, "Ünï@Example.org"), ("x", 10**12, " C@D.io ")],
)
def test_token_bytes_are_the_documented_hmac_sha256_format(
    secret: str, sid: int, address: str
) -> None:
    # links already in people's inboxes must keep working: the format is pinned to the module
    # docstring, computed here with the standard hmac module, independently of our fast path
    def key(purpose: bytes) -> bytes:
        return hmac.digest(secret.encode(), b"newsletter/" + purpose, "sha256")

    tag_key, mac_key = key(b"unsubscribe-email/v1"), key(b"unsubscribe-token/v1")
    tag = hmac.digest(tag_key, address.strip().lower().encode(), "sha256")[:4]
    varint = bytearray()
    n = sid
    while True:
        varint.append((n & 0x7F) | (0x80 if n >> 7 else 0))
        n >>= 7
        if not n:
            break
    payload = b"\x01" + bytes(varint) + tag
    raw = payload + hmac.digest(mac_key, payload, "sha256")[:12]
    assert make_token(secret, sid, address) == base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("mailto", ["", "unsubscribe@example.org", "mailto:u@example.org"])
def test_links_for_a_send_equal_the_one_at_a_time_functions(mailto: str) -> None:
    links = UnsubscribeLinks(SECRET, "https://example.org/news/", mailto)
    for sid, address in [(1, "a@b.org"), (300, " Ann@Example.org"), (10**9, "z@y.io")]:
        url = unsubscribe_url("https://example.org/news/", make_token(SECRET, sid, address))
        assert links.url(sid, address) == url
        assert links.headers(url) == list_unsubscribe_headers(url, mailto)


def test_other_secret_rejects_and_id_does_not_leak_in_plain_text() -> None:
    token = make_token(SECRET, 42, "a@b.org")
    with pytest.raises(InvalidToken):
        verify_token(SECRET + "x", token)
    assert "a@b.org" not in base64.urlsafe_b64decode(token + "==").decode("latin-1")


def test_ten_thousand_mutated_or_random_tokens_are_all_rejected() -> None:
    rng = random.Random(1234)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    good = [make_token(SECRET, rng.randrange(1, 10**6), f"u{i}@example.org") for i in range(50)]
    tried = 0
    for i in range(10_000):
        base = good[i % len(good)]
        kind = i % 5
        chars = list(base)
        if kind == 0:  # change one character
            pos = rng.randrange(len(chars))
            chars[pos] = rng.choice([c for c in alphabet if c != chars[pos]])
            mutated = "".join(chars)
        elif kind == 1:  # cut short or extend
            mutated = base[: rng.randrange(len(base))] if i % 2 else base + rng.choice(alphabet)
        elif kind == 2:  # random token of a plausible length
            mutated = "".join(rng.choice(alphabet) for _ in range(rng.randrange(8, 40)))
        elif kind == 3:  # swap two different characters
            a, b = rng.sample(range(len(chars)), 2)
            if chars[a] == chars[b]:
                chars[a] = "A" if chars[a] != "A" else "B"
            chars[a], chars[b] = chars[b], chars[a]
            mutated = "".join(chars)
        else:  # flip a bit in the decoded bytes and re-encode
            raw = bytearray(base64.urlsafe_b64decode(base + "=" * (-len(base) % 4)))
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
            mutated = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
        if mutated in good:
            continue
        tried += 1
        with pytest.raises(InvalidToken):
            verify_token(SECRET, mutated)
    assert tried > 9_900


@pytest.mark.parametrize("junk", ["", "=", "a" * 200, "AcDEB rgiXNdGS9F6Dnbjsy3DhY", "é" * 20])
def test_junk_is_rejected(junk: str) -> None:
    with pytest.raises(InvalidToken):
        verify_token(SECRET, junk)


def test_non_canonical_spelling_of_a_good_token_is_rejected() -> None:
    token = make_token(SECRET, 5, "a@b.org")  # 20 bytes -> 27 chars, 2 unused low bits
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(token[-1])
    other = (
        token[:-1] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last ^ 1]
    )
    with pytest.raises(InvalidToken):
        verify_token(SECRET, other)


def test_list_unsubscribe_headers() -> None:
    url = unsubscribe_url("https://news.example.org/", "TOKEN")
    assert url == "https://news.example.org/u/TOKEN"
    assert list_unsubscribe_headers(url) == {
        "List-Unsubscribe": "<https://news.example.org/u/TOKEN>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    both = list_unsubscribe_headers(url, "mailto:leave@example.org")
    assert both["List-Unsubscribe"] == (
        "<https://news.example.org/u/TOKEN>, <mailto:leave@example.org?subject=unsubscribe>"
    )


def test_signing_secret_from_environment_wins(tmp_path: Path) -> None:
    keep = tmp_path / ".newsletter-secret"
    assert signing_secret(Secrets(signing_key="env"), allow_generated=True, keep_at=keep) == "env"
    assert not keep.exists()


def test_signing_secret_missing_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SecretMissing, match="NEWSLETTER_SECRET"):
        signing_secret(Secrets(), allow_generated=False, keep_at=tmp_path / "s")


def test_generated_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    keep = tmp_path / "sub" / ".newsletter-secret"
    first = signing_secret(Secrets(), allow_generated=True, keep_at=keep)
    assert len(first) >= 40
    assert stat.S_IMODE(os.stat(keep).st_mode) == 0o600
    again = signing_secret(Secrets(), allow_generated=True, keep_at=keep)
    assert again == first
    token = make_token(first, 9, "x@y.org")
    assert verify_token(again, token).subscriber_id == 9

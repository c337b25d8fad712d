"""The selector is pure: posts, criteria and ``now`` in, selection with reasons out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from newsletter.content import Post
from newsletter.issue import IssueQuery
from newsletter.selection import Criteria, Reason, select

LA = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=LA)


def post(
    slug: str,
    when: datetime,
    *,
    folder: str = "content",
    draft: bool = False,
    categories: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
) -> Post:
    return Post(
        path=Path(f"/site/{folder}/{slug}.md"),
        slug=slug,
        title=slug.replace("-", " ").title(),
        date=when,
        url=f"https://example.org/news/{slug}/",
        categories=categories,
        tags=tags,
        draft=draft,
    )


def reasons(selection_posts: list[tuple[Post, Reason]]) -> dict[str, Reason]:
    return {p.slug: r for p, r in selection_posts}


def test_newest_first_and_mixed_offsets_sort() -> None:
    a = post("a", datetime(2026, 3, 1, 10, 0, tzinfo=LA))
    b = post("b", datetime(2026, 3, 1, 18, 30, tzinfo=UTC))  # 10:30 in LA
    c = post("c", datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5))))  # 6:00 LA
    sel = select([a, c, b], Criteria(), now=NOW)
    assert [p.slug for p in sel.selected] == ["b", "a", "c"]
    assert sel.skipped == []


def test_drafts_and_future_are_out_unless_asked() -> None:
    d = post("draft", datetime(2026, 5, 1, tzinfo=LA), draft=True)
    f = post("future", datetime(2027, 1, 14, tzinfo=LA))
    ok = post("ok", datetime(2026, 5, 2, tzinfo=LA))
    sel = select([d, f, ok], Criteria(), now=NOW)
    assert [p.slug for p in sel.selected] == ["ok"]
    assert reasons(sel.skipped) == {"draft": Reason.DRAFT, "future": Reason.FUTURE}
    both = select([d, f, ok], Criteria(include_drafts=True, include_future=True), now=NOW)
    assert [p.slug for p in both.selected] == ["future", "ok", "draft"]


def test_window_since_inclusive_until_exclusive() -> None:
    posts = [post(f"p{d}", datetime(2026, 10, d, tzinfo=LA)) for d in (1, 10, 20)]
    crit = Criteria(
        since=datetime(2026, 10, 10, tzinfo=LA), until=datetime(2026, 10, 20, tzinfo=LA)
    )
    sel = select(posts, crit, now=NOW)
    assert [p.slug for p in sel.selected] == ["p10"]
    assert reasons(sel.skipped) == {"p1": Reason.BEFORE_WINDOW, "p20": Reason.AFTER_WINDOW}


def test_month_flag_uses_the_site_time_zone() -> None:
    late_oct = post("late-oct", datetime(2026, 10, 31, 23, 30, tzinfo=LA))  # Nov 1 in UTC
    early_nov = post("early-nov", datetime(2026, 11, 1, 0, 30, tzinfo=LA))
    early_oct_utc = post("oct-utc", datetime(2026, 10, 1, 3, 0, tzinfo=UTC))  # Sep 30 LA
    crit = IssueQuery(month="2026-10").criteria(LA, NOW)
    sel = select([late_oct, early_nov, early_oct_utc], crit, now=NOW)
    assert [p.slug for p in sel.selected] == ["late-oct"]
    assert reasons(sel.skipped) == {
        "early-nov": Reason.AFTER_WINDOW,
        "oct-utc": Reason.BEFORE_WINDOW,
    }


def test_days_and_until_date_includes_the_whole_day() -> None:
    crit = IssueQuery(days=7, until="2026-11-25").criteria(LA, NOW)
    assert crit.since == NOW - timedelta(days=7)
    assert crit.until == datetime(2026, 11, 26, tzinfo=LA)
    inside = post("inside", datetime(2026, 11, 25, 23, 59, tzinfo=LA))
    old = post("old", datetime(2026, 11, 19, 11, 0, tzinfo=LA))
    sel = select([inside, old], crit, now=NOW)
    assert [p.slug for p in sel.selected] == ["inside"]
    assert reasons(sel.skipped) == {"old": Reason.BEFORE_WINDOW}


def test_categories_and_tags_include_and_exclude_case_insensitively() -> None:
    news = post("news", datetime(2026, 6, 1, tzinfo=LA), categories=("News",), tags=("python",))
    spons = post("spons", datetime(2026, 6, 2, tzinfo=LA), categories=("Sponsors",))
    talks = post("talks", datetime(2026, 6, 3, tzinfo=LA), categories=("News",), tags=("video",))
    sel = select([news, spons, talks], Criteria(categories=("news",)), now=NOW)
    assert [p.slug for p in sel.selected] == ["talks", "news"]
    assert reasons(sel.skipped) == {"spons": Reason.CATEGORY}
    sel = select([news, spons, talks], Criteria(exclude_categories=("SPONSORS",)), now=NOW)
    assert reasons(sel.skipped) == {"spons": Reason.CATEGORY}
    sel = select([news, spons, talks], Criteria(tags=("Python",)), now=NOW)
    assert [p.slug for p in sel.selected] == ["news"]
    assert reasons(sel.skipped) == {"spons": Reason.TAG, "talks": Reason.TAG}
    sel = select([news, spons, talks], Criteria(exclude_tags=("video",)), now=NOW)
    assert reasons(sel.skipped) == {"talks": Reason.TAG}


def test_same_post_in_two_folders_is_selected_once() -> None:
    when = datetime(2026, 7, 1, tzinfo=LA)
    first = post("same", when, folder="a")
    second = post("same", when, folder="b")
    sel = select([second, first], Criteria(), now=NOW)
    assert sel.selected == [first]
    assert sel.skipped == [(second, Reason.DUPLICATE)]


def test_limit_keeps_the_newest() -> None:
    posts = [post(f"p{d}", datetime(2026, 8, d, tzinfo=LA)) for d in range(1, 6)]
    sel = select(posts, Criteria(limit=2), now=NOW)
    assert [p.slug for p in sel.selected] == ["p5", "p4"]
    assert reasons(sel.skipped) == {"p3": Reason.LIMIT, "p2": Reason.LIMIT, "p1": Reason.LIMIT}


def test_explicit_picks_by_slug_file_name_or_path() -> None:
    a = post("wrap-up", datetime(2026, 10, 5, tzinfo=LA))
    b = post("videos", datetime(2026, 10, 21, tzinfo=LA))
    c = post("survey", datetime(2026, 11, 12, tzinfo=LA))
    sel = select([a, b, c], Criteria(posts=("wrap-up", "content/survey.md", "nope")), now=NOW)
    assert [p.slug for p in sel.selected] == ["survey", "wrap-up"]
    assert reasons(sel.skipped) == {"videos": Reason.NOT_PICKED}
    assert sel.unmatched == ["nope"]


def test_since_last_issue_starts_where_the_last_window_ended() -> None:
    before = post("before", datetime(2026, 10, 21, 9, 0, tzinfo=LA))
    at_end = post("at-end", datetime(2026, 11, 1, tzinfo=LA))  # windows end exclusive
    newer = post("newer", datetime(2026, 11, 12, tzinfo=LA))
    crit = Criteria(since_last_issue=True)
    end = datetime(2026, 11, 1, tzinfo=LA)
    sel = select([before, at_end, newer], crit, now=NOW, last_issue=end)
    assert [p.slug for p in sel.selected] == ["newer", "at-end"]
    assert reasons(sel.skipped) == {"before": Reason.BEFORE_WINDOW}
    first_issue = select([before, newer], crit, now=NOW, last_issue=None)
    assert len(first_issue.selected) == 2


def test_since_last_issue_leaves_out_posts_another_campaign_carried() -> None:
    blasted = post("blasted", datetime(2026, 11, 5, tzinfo=LA))
    newer = post("newer", datetime(2026, 11, 12, tzinfo=LA))
    end = datetime(2026, 11, 1, tzinfo=LA)
    sent = {"blasted": "blasted-0123456789"}
    sel = select(
        [blasted, newer],
        Criteria(since_last_issue=True),
        now=NOW,
        last_issue=end,
        already_sent=sent,
    )
    assert [p.slug for p in sel.selected] == ["newer"]
    assert reasons(sel.skipped) == {"blasted": Reason.ALREADY_SENT}
    assert sel.label(blasted, Reason.ALREADY_SENT) == "already sent in blasted-0123456789"
    # only --since last-issue leaves them out: an explicit window is what the operator asked for
    explicit = select([blasted, newer], Criteria(since=end), now=NOW, already_sent=sent)
    assert len(explicit.selected) == 2


def test_every_post_is_accounted_for_exactly_once() -> None:
    posts = [
        post(f"p{i}", datetime(2026, 1 + i % 12, 1 + i % 27, tzinfo=LA), draft=i % 5 == 0)
        for i in range(40)
    ]
    sel = select(posts, Criteria(limit=10, since=datetime(2026, 3, 1, tzinfo=LA)), now=NOW)
    seen = [id(p) for p in sel.selected] + [id(p) for p, _ in sel.skipped]
    assert sorted(seen) == sorted(id(p) for p in posts)
    assert len(sel.selected) == 10

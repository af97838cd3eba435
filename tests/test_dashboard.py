"""The moderator dashboard over real HTTP on 127.0.0.1: login, roles, CSRF, rate limit,
escaping, the log, the review queue and FAQ editor reaching the bot at once, announcement
retry / mark-sent, privacy, and /metrics."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy import select, update

from bot.cli import main
from bot.dashboard.charts import engagement_curves, questions_per_day, top_entries
from bot.errors import PermanentPlatformError, TransientPlatformError
from bot.events import Author, ChoicePicked, Feedback, utcnow
from bot.privacy import Pseudonymizer, purge_engagement
from bot.store.db import Database
from bot.store.engagement import Event, LogFilter
from bot.store.models import (
    AuditLog,
    DashboardUser,
    EngagementEvent,
    LoginFailure,
    ReviewItem,
)
from tests.conftest import database_away
from tests.dashboard_helpers import (
    GENERAL,
    PASSWORDS,
    DashBot,
    client,
    dashboard_bot,
    dashboard_config,
)

PAGES = (
    "/dashboard/",
    "/dashboard/log",
    "/dashboard/log.csv",
    "/dashboard/announcements",
    "/dashboard/announcements.csv",
    "/dashboard/announcements/1",
    "/dashboard/announcements/1.csv",
    "/dashboard/announcements/1/deliveries.csv",
    "/dashboard/announcements/1/metrics.csv",
    "/dashboard/attention.csv",
    "/dashboard/review",
    "/dashboard/review.csv",
    "/dashboard/faq",
    "/dashboard/faq.csv",
    "/dashboard/faq/1",
    "/dashboard/faq/new",
    "/dashboard/audit",
    "/dashboard/audit.csv",
)
ACTIONS = (
    "/dashboard/announcements/1/retry",
    "/dashboard/announcements/1/mark-sent",
    "/dashboard/review/phrasing",
    "/dashboard/review/create",
    "/dashboard/review/dismiss",
    "/dashboard/faq/new",
    "/dashboard/faq/1",
    "/dashboard/faq/1/delete",
    "/dashboard/logout",
)
UNANSWERABLE = "Is there a PyTorch Foundation meetup in Lisbon this spring?"


@pytest.fixture
async def bot(db_url: str) -> AsyncIterator[DashBot]:
    async with dashboard_bot(dashboard_config(db_url)) as running:
        yield running


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def _audit(bot: DashBot) -> list[AuditLog]:
    return list(await bot.runtime.audit.list(1000))


# --- security ----------------------------------------------------------------------------


async def test_every_page_and_export_needs_a_login(bot: DashBot) -> None:
    await bot.announce("now --to slack Hello")
    async with client(bot.base) as anonymous:
        for path in PAGES:
            status, _, resp = await anonymous.get(path)
            assert status == 303, path
            assert resp.headers["Location"].startswith("/dashboard/login?next="), path
        for path in ACTIONS:
            status, text, _ = await anonymous.post(path, {"platform": "slack"}, csrf=False)
            assert status == 401, path
            assert "log in again" in text
        status, text, _ = await anonymous.get("/")
        assert status == 302
    async with client(bot.base, "ada") as admin:
        for path in PAGES:
            status, text, _ = await admin.get(path)
            assert status == 200, (path, text[:300])
            assert "Traceback" not in text


async def test_login_cookie_is_httponly_samesite_and_logout_ends_the_session(
    bot: DashBot,
) -> None:
    async with client(bot.base) as browser:
        await browser.get("/dashboard/login")
        status, _, resp = await browser.post(
            "/dashboard/login",
            {"name": "Mia", "password": "mia-password-1", "next": "/dashboard/faq"},
        )
        assert status == 303 and resp.headers["Location"] == "/dashboard/faq"
        cookie = resp.cookies["fb_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/dashboard"
        assert not cookie["secure"]
        status, text, _ = await browser.get("/dashboard/log")
        assert status == 200 and "mia (moderator)" in text
        status, _, _ = await browser.post("/dashboard/logout", {})
        assert status == 303
        status, _, _ = await browser.get("/dashboard/log")
        assert status == 303  # the old cookie opens nothing any more
    actions = [(r.actor, r.action, r.allowed) for r in await _audit(bot)]
    assert ("dashboard:mia", "dashboard.login", True) in actions
    assert ("dashboard:mia", "dashboard.logout", True) in actions


async def test_login_redirects_only_inside_the_dashboard(bot: DashBot) -> None:
    async with client(bot.base) as browser:
        await browser.get("/dashboard/login")
        _, _, resp = await browser.post(
            "/dashboard/login",
            {"name": "mia", "password": "mia-password-1", "next": "//evil.example/x"},
        )
        assert resp.headers["Location"] == "/dashboard/"


async def test_secure_cookie_option(db_url: str) -> None:
    config = dashboard_config(db_url, dashboard={"secure_cookie": True})
    async with dashboard_bot(config) as bot, client(bot.base) as browser:
        _, _, resp = await browser.get("/dashboard/login")
        cookie = resp.cookies["fb_login_csrf"]
        assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
        # A client only sends Secure cookies over HTTPS (as behind a TLS proxy): hand it over.
        form = {"name": "mia", "password": "mia-password-1", "csrf_token": browser.csrf}
        async with browser.http.post(
            f"{bot.base}/dashboard/login",
            data=form,
            headers={"Cookie": f"fb_login_csrf={cookie.value}"},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303
        session = resp.cookies["fb_session"]
        assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"


async def test_passwords_are_stored_as_argon2id_hashes_only(bot: DashBot) -> None:
    async with bot.runtime.db.session() as session:
        stored = dict(
            (await session.execute(select(DashboardUser.name, DashboardUser.password_hash))).all()
        )
    assert set(stored) == {"mia", "cody", "ada"}
    for name, hashed in stored.items():
        assert hashed.startswith("$argon2id$") and PASSWORDS[name] not in hashed
    assert len(set(stored.values())) == 3  # salted: no two alike


async def test_failed_logins_are_rate_limited_and_audited(bot: DashBot) -> None:
    async with client(bot.base) as browser:
        for _ in range(3):
            assert await browser.login("mia", "wrong-password") == 401
        await browser.get("/dashboard/login")
        status, text, resp = await browser.post(
            "/dashboard/login", {"name": "mia", "password": "mia-password-1"}
        )
        assert status == 429
        assert "Too many failed logins; try again in 15 minutes." in text
        assert int(resp.headers["Retry-After"]) > 800
    refused = [r for r in await _audit(bot) if r.action == "dashboard.login" and not r.allowed]
    assert len(refused) >= 4
    assert any("rate limited" in (r.detail or "") for r in refused)


async def test_wrong_password_shows_one_line_and_unknown_user_the_same(bot: DashBot) -> None:
    async with client(bot.base) as browser:
        await browser.get("/dashboard/login")
        status, text, _ = await browser.post(
            "/dashboard/login", {"name": "nobody", "password": "whatever-123"}
        )
        assert status == 401 and "Wrong user name or password." in text
        await browser.get("/dashboard/login")
        status, text2, _ = await browser.post(
            "/dashboard/login", {"name": "mia", "password": "whatever-123"}
        )
        assert status == 401 and "Wrong user name or password." in text2


async def test_login_form_without_its_csrf_token_is_refused(bot: DashBot) -> None:
    async with client(bot.base) as browser:
        status, text, _ = await browser.post(
            "/dashboard/login", {"name": "mia", "password": "mia-password-1"}, csrf=False
        )
        assert status == 403 and "The login form expired" in text
        assert "fb_session" not in {c.key for c in browser.http.cookie_jar}


async def test_forms_without_the_csrf_token_are_refused_and_change_nothing(
    bot: DashBot,
) -> None:
    before = await bot.runtime.faq.get(1)
    assert before is not None
    form = {"question": "Hijacked?", "answer": "Hijacked.", "phrasings": ""}
    async with client(bot.base, "ada") as admin:
        status, text, _ = await admin.post("/dashboard/faq/1", form, csrf=False)
        assert status == 403 and "reload the page and try again" in text
        status, _, _ = await admin.post(
            "/dashboard/faq/1", [*form.items(), ("csrf_token", "forged")], csrf=False
        )
        assert status == 403
    after = await bot.runtime.faq.get(1)
    assert after is not None and after.question == before.question


async def test_roles_limit_what_each_user_may_do(bot: DashBot) -> None:
    await bot.announce("now --to slack Roles test")
    async with client(bot.base, "cody") as comms:
        status, text, _ = await comms.post("/dashboard/faq/1/delete", {})
        assert status == 403 and "The comms role cannot do this." in text
        status, _, _ = await comms.get("/dashboard/audit")
        assert status == 403
        _, faq_page, _ = await comms.get("/dashboard/faq/1")
        assert "<fieldset disabled>" in faq_page
    async with client(bot.base, "mia") as moderator:
        status, _, _ = await moderator.post(
            "/dashboard/announcements/1/mark-sent", {"platform": "slack"}
        )
        assert status == 403
        _, page, _ = await moderator.get("/dashboard/")
        assert "Audit log" not in page
    assert await bot.runtime.faq.get(1) is not None


async def test_removed_user_loses_their_session(bot: DashBot) -> None:
    async with client(bot.base, "mia") as moderator:
        assert (await moderator.get("/dashboard/log"))[0] == 200
        from bot.store.users import UserStore

        assert await UserStore(bot.runtime.db).remove("mia")
        assert (await moderator.get("/dashboard/log"))[0] == 303


async def test_script_in_a_question_is_shown_as_text(bot: DashBot) -> None:
    evil = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'
    await bot.ask(evil, "m-evil")
    async with client(bot.base, "ada") as admin:
        for path in ("/dashboard/log", "/dashboard/review"):
            status, page, resp = await admin.get(path)
            assert status == 200
            assert "<script>document.title" not in page and "<img src=x" not in page
            assert "&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt;" in page
            assert "script-src" not in resp.headers["Content-Security-Policy"]
            assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        _, exported, _ = await admin.get("/dashboard/log.csv?kind=question")
        assert _csv(exported)[0]["text"] == evil


async def test_csv_cells_cannot_run_as_spreadsheet_formulas(bot: DashBot) -> None:
    formulas = ['=HYPERLINK("http://evil.example","click")', " =1+2", "\uff1dSUM(A1:A9)"]
    for n, text in enumerate(formulas):
        await bot.ask(text, f"m-formula-{n}")
    async with client(bot.base, "mia") as moderator:
        _, exported, _ = await moderator.get("/dashboard/log.csv?kind=question")
    cells = {row["text"] for row in _csv(exported)}
    assert cells == {"'" + text for text in formulas}


# --- engagement log ----------------------------------------------------------------------


async def test_log_filters_search_pages_and_exports_what_is_shown(bot: DashBot) -> None:
    for i in range(6):
        await bot.ask(f"who is on the pytorch foundation board? ({i})", f"m{i}", user="U-bob")
    await bot.ask("what is the weather in Paris", "m-w", user="U-carol")
    await bot.runtime.engagement.record(
        Event(platform="x", kind="question", user="U-dan", text="asked on x about the board")
    )
    async with client(bot.base, "mia") as moderator:
        _, on_x, _ = await moderator.get("/dashboard/log?platform=x")
        assert "asked on x about the board" in on_x and "1 rows" in on_x
        _, on_slack, _ = await moderator.get("/dashboard/log?platform=slack&kind=question")
        assert "asked on x" not in on_slack and "7 rows" in on_slack
        status, page, _ = await moderator.get("/dashboard/log?kind=question&user=U-bob")
        assert status == 200
        assert "Page 1 of 2 · 6 rows" in page
        assert page.count('<tr class="kind-question">') == 5
        assert "weather" not in page
        _, page2, _ = await moderator.get("/dashboard/log?kind=question&user=U-bob&page=2")
        assert page2.count('<tr class="kind-question">') == 1
        _, search, _ = await moderator.get("/dashboard/log?q=WEATHER+paris")
        assert "what is the weather in Paris" in search and "1 rows" in search
        _, by_channel, _ = await moderator.get("/dashboard/log?channel=C-nowhere")
        assert "No events match." in by_channel
        today = utcnow().date()
        _, dated, _ = await moderator.get(
            f"/dashboard/log?user=U-carol&since={today}&until={today}"
        )
        assert "1 rows" in dated
        _, future, _ = await moderator.get(f"/dashboard/log?since={today + timedelta(days=1)}")
        assert "0 rows" in future
        status, open_ended, _ = await moderator.get("/dashboard/log?until=9999-12-31")
        assert status == 200 and "15 rows" in open_ended  # 8 questions, 6 answers, 1 decline
        status, everything, _ = await moderator.get("/dashboard/log.csv?until=9999-12-31")
        assert status == 200 and len(_csv(everything)) == 15
        status, earliest, _ = await moderator.get(
            "/dashboard/log?since=0001-01-01&until=0001-01-01"
        )
        assert status == 200 and "0 rows" in earliest
        status, exported, resp = await moderator.get("/dashboard/log.csv?kind=question&user=U-bob")
        assert resp.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in resp.headers["Content-Disposition"]
    rows = _csv(exported)
    assert len(rows) == 6 and {r["user"] for r in rows} == {"U-bob"}
    assert list(rows[0]) == [
        "id",
        "created_at",
        "platform",
        "channel",
        "user",
        "kind",
        "text",
        "faq_entry_id",
        "announcement_id",
        "score",
        "link",
    ]


async def test_log_links_to_the_message_on_its_platform(bot: DashBot) -> None:
    await bot.runtime.engagement.record(
        Event(
            platform="slack",
            kind="question",
            channel="C1",
            text="linked",
            message_id="1700000000.123456",
        ),
        Event(platform="x", kind="question", text="tweet", message_id="1790000000000000001"),
        Event(platform="slack", kind="answer", text="bad link", url="javascript:alert(1)"),
    )
    async with client(bot.base, "mia") as moderator:
        _, page, _ = await moderator.get("/dashboard/log")
    assert 'href="https://slack.com/archives/C1/p1700000000123456"' in page
    assert 'href="https://x.com/i/web/status/1790000000000000001"' in page
    assert "javascript:" not in page


async def test_a_bad_date_gets_one_line_and_no_rows(bot: DashBot) -> None:
    await bot.ask("who is on the board?", "m1")
    async with client(bot.base, "mia") as moderator:
        status, page, _ = await moderator.get("/dashboard/log?since=yesterday")
        assert status == 400
        assert "Cannot read the date; use YYYY-MM-DD (e.g. 2026-11-23)." in page
        assert "No events match." in page
        status, _, _ = await moderator.get("/dashboard/log.csv?since=31/12/2026")
        assert status == 400


# --- review queue and FAQ editor ---------------------------------------------------------


async def _review_ids(bot: DashBot) -> list[int]:
    async with bot.runtime.db.session() as session:
        rows = await session.scalars(select(ReviewItem.id).where(ReviewItem.status == "open"))
        return list(rows)


async def test_similar_unanswered_questions_are_grouped(bot: DashBot) -> None:
    await bot.ask(UNANSWERABLE, "m1")
    await bot.ask("is there a pytorch foundation meetup in lisbon this spring??", "m2")
    await bot.ask("What is the capital of Peru?", "m3")
    async with client(bot.base, "mia") as moderator:
        _, page, _ = await moderator.get("/dashboard/review")
        _, exported, _ = await moderator.get("/dashboard/review.csv")
    assert page.count('<section class="group">') == 2
    assert "2 questions · declined" in page
    groups = {(r["group"], r["question"]) for r in _csv(exported)}
    assert len({g for g, _ in groups}) == 2


async def test_only_questions_that_ask_the_same_thing_share_a_group(bot: DashBot) -> None:
    """The report: "is the foundation hiring" (no closest entry) sat in the group of "why
    did they pick the linux foundation", and adding a phrasing resolved it too."""
    await bot.ask("what are the membership fees for the linux foundation", "m1")
    await bot.ask("What are the membership fees for the Linux Foundation??", "m2")
    await bot.ask("is the foundation hiring", "m3")
    async with client(bot.base, "mia") as moderator:
        _, page, _ = await moderator.get("/dashboard/review")
        _, exported, _ = await moderator.get("/dashboard/review.csv")
    groups: dict[str, set[str]] = {}
    for row in _csv(exported):
        groups.setdefault(row["group"], set()).add(row["question"])
    assert sorted(groups.values(), key=len) == [
        {"is the foundation hiring"},
        {
            "what are the membership fees for the linux foundation",
            "What are the membership fees for the Linux Foundation??",
        },
    ]
    assert page.count('type="checkbox" name="review_id"') == 3
    assert page.count('name="review_id" value="') == 3  # one per question, nothing hidden


async def test_an_action_applies_to_the_ticked_questions_only(bot: DashBot) -> None:
    first, second = "who chairs the money tribunal", "who chairs the money tribunal???"
    await bot.ask(first, "m1")
    await bot.ask(second, "m2")
    ids = await _review_ids(bot)
    async with client(bot.base, "mia") as moderator:
        await moderator.get("/dashboard/review")
        status, _, _ = await moderator.post(
            "/dashboard/review/phrasing", [("entry_id", "1"), ("review_id", str(ids[1]))]
        )
        assert status == 303
        _, page, _ = await moderator.get("/dashboard/review")
        assert "Added \u201cwho chairs the money tribunal???\u201d as a phrasing" in page
        await moderator.post("/dashboard/review/dismiss", [])
        _, page, _ = await moderator.get("/dashboard/review")
        assert "Select at least one question of the group; nothing changed." in page
    assert await _review_ids(bot) == [ids[0]]
    entry = await bot.runtime.faq.get(1)
    assert entry is not None and second in entry.phrasings and first not in entry.phrasings


async def test_a_picked_suggestion_is_one_click_from_becoming_a_phrasing(bot: DashBot) -> None:
    """A user asked in their own words, the bot offered suggestions and the user picked
    one: the review queue offers that entry in one click, and the bot then answers outright."""
    question = "what companies"
    assert bot.runtime.knowledge.answer(question).outcome.value == "clarify"
    await bot.ask(question, "m1")
    offered = bot.slack.sent[-1].choices
    board = next(c for c in offered if "board" in c.label.lower())
    await bot.slack.inject(ChoicePicked(GENERAL, Author("U-alice"), board.token))
    ids = await _review_ids(bot)
    entry_id = int(board.token.rsplit(":", 1)[1])
    async with client(bot.base, "mia") as moderator:
        _, page, _ = await moderator.get("/dashboard/review")
        assert "user picked a suggestion" in page
        assert f'name="picked_entry_id" value="{entry_id}"' in page
        status, _, _ = await moderator.post(
            "/dashboard/review/phrasing",
            [("picked_entry_id", str(entry_id)), ("entry_id", "1"), ("review_id", str(ids[0]))],
        )
        assert status == 303
    answer = bot.runtime.knowledge.answer(question)
    assert answer.answered and answer.entry_id == entry_id


async def test_add_as_phrasing_reaches_the_bot_at_once(bot: DashBot) -> None:
    question = "where is the money tribunal of the thing located"
    assert bot.runtime.knowledge.answer(question).outcome.value == "decline"
    await bot.ask(question, "m1")
    ids = await _review_ids(bot)
    async with client(bot.base, "mia") as moderator:
        await moderator.get("/dashboard/review")
        status, _, _ = await moderator.post(
            "/dashboard/review/phrasing",
            [("entry_id", "1"), ("phrasing", question), *(("review_id", str(i)) for i in ids)],
        )
        assert status == 303
        _, page, _ = await moderator.get("/dashboard/review")
    assert "as a phrasing of" in page and "Nothing waiting for review." in page
    answer = bot.runtime.knowledge.answer(question)
    assert answer.answered and answer.entry_id == 1
    entry = await bot.runtime.faq.get(1)
    assert entry is not None and question in entry.phrasings
    assert any(r.action == "faq.add_phrasing" for r in await _audit(bot))


async def test_create_entry_from_a_group_answers_every_phrasing(bot: DashBot) -> None:
    variant = "is there a pytorch foundation meetup in lisbon this spring??"
    await bot.ask(UNANSWERABLE, "m1")
    await bot.ask(variant, "m2")
    ids = await _review_ids(bot)
    form = [
        ("question", UNANSWERABLE),
        ("answer", "Yes: the Lisbon meetup is on 12 April."),
        ("source_url", "https://events.example/lisbon"),
        ("as_of", "2026-11-01"),
        *(("review_id", str(i)) for i in ids),
        ("phrasing", UNANSWERABLE),
        ("phrasing", variant),
    ]
    async with client(bot.base, "mia") as moderator:
        await moderator.get("/dashboard/review")
        status, _, _ = await moderator.post("/dashboard/review/create", form)
        assert status == 303
        _, page, _ = await moderator.get("/dashboard/review")
    assert "Created FAQ entry" in page
    reply = await bot.ask(UNANSWERABLE, "m3")
    assert reply.startswith("Yes: the Lisbon meetup is on 12 April.")
    assert "as of 1 November 2026" in reply
    assert await _review_ids(bot) == []
    audited = {(r.actor, r.action) for r in await _audit(bot)}
    assert ("dashboard:mia", "faq.create") in audited


async def test_a_bad_new_entry_is_refused_with_one_line_and_changes_nothing(
    bot: DashBot,
) -> None:
    await bot.ask(UNANSWERABLE, "m1")
    ids = await _review_ids(bot)
    count = await bot.runtime.faq.count()
    async with client(bot.base, "mia") as moderator:
        await moderator.get("/dashboard/review")
        await moderator.post(
            "/dashboard/review/create",
            [("question", UNANSWERABLE), ("answer", "   "), ("review_id", str(ids[0]))],
        )
        _, page, _ = await moderator.get("/dashboard/review")
    assert "Not saved: &#39;answer&#39; is empty." in page
    assert await bot.runtime.faq.count() == count
    assert await _review_ids(bot) == ids


async def test_dismiss_closes_the_group(bot: DashBot) -> None:
    await bot.ask(UNANSWERABLE, "m1")
    ids = await _review_ids(bot)
    async with client(bot.base, "mia") as moderator:
        await moderator.get("/dashboard/review")
        await moderator.post("/dashboard/review/dismiss", [("review_id", str(i)) for i in ids])
        _, page, _ = await moderator.get("/dashboard/review")
    assert "Dismissed 1 question(s)." in page and "Nothing waiting for review." in page
    assert ("dashboard:mia", "review.dismiss") in {(r.actor, r.action) for r in await _audit(bot)}


async def test_a_thumbs_down_answer_waits_in_the_review_queue(bot: DashBot) -> None:
    await bot.ask("is pytorch still open source?", "m1")
    token = bot.slack.sent[-1].feedback_token
    assert token
    await bot.slack.inject(Feedback(GENERAL, Author("U-carol"), token, helpful=False))
    async with client(bot.base, "mia") as moderator:
        _, page, _ = await moderator.get("/dashboard/review")
        _, exported, _ = await moderator.get("/dashboard/review.csv")
    assert "<h2>is pytorch still open source?</h2>" in page and "thumbs_down" in page
    assert [(r["question"], r["reason"]) for r in _csv(exported)] == [
        ("is pytorch still open source?", "thumbs_down")
    ]


async def test_faq_editor_changes_answers_at_once(bot: DashBot) -> None:
    entry = await bot.runtime.faq.get(1)
    assert entry is not None
    async with client(bot.base, "mia") as moderator:
        await moderator.get("/dashboard/faq/1")
        status, _, _ = await moderator.post(
            "/dashboard/faq/1",
            {
                "question": entry.question,
                "phrasings": "\n".join(entry.phrasings),
                "answer": "A brand new answer <b>with markup</b>.",
                "tags": "governance, board",
                "source_url": entry.source_url or "",
                "as_of": "2026-11-20",
            },
        )
        assert status == 303
        _, page, _ = await moderator.get("/dashboard/faq/1")
        assert "the bot uses it now" in page
        assert "A brand new answer &lt;b&gt;with markup&lt;/b&gt;." in page
        answer = bot.runtime.knowledge.answer(entry.question)
        assert answer.text.startswith("A brand new answer <b>with markup</b>.")
        await moderator.get("/dashboard/faq/new")
        status, _, resp = await moderator.post(
            "/dashboard/faq/new",
            {
                "question": "When is the Lisbon PyTorch meetup?",
                "answer": "On 12 April.",
                "phrasings": "lisbon meetup date",
            },
        )
        new_id = int(resp.headers["Location"].rsplit("/", 1)[1])
        assert bot.runtime.knowledge.answer("When is the Lisbon PyTorch meetup?").entry_id == new_id
        await moderator.get(f"/dashboard/faq/{new_id}")
        await moderator.post(f"/dashboard/faq/{new_id}/delete", {})
        assert not bot.runtime.knowledge.answer("When is the Lisbon PyTorch meetup?").answered
        await moderator.get("/dashboard/faq/1")
        await moderator.post("/dashboard/faq/1", {"question": "", "answer": "x"})
        _, page, _ = await moderator.get("/dashboard/faq/1")
        assert "Not saved: &#39;question&#39; is empty." in page
        assert (await moderator.get("/dashboard/faq/9999"))[0] == 404
    actions = [r.action for r in await _audit(bot)]
    assert {"faq.update", "faq.create", "faq.delete"} <= set(actions)


# --- announcements -----------------------------------------------------------------------


async def test_retry_a_failed_delivery_from_the_dashboard(bot: DashBot) -> None:
    bot.x.fail_next(PermanentPlatformError("x", "401 invalid token"))
    await bot.announce("now --to slack,x Foundation news")
    async with client(bot.base, "cody") as comms:
        _, overview, _ = await comms.get("/dashboard/")
        assert "<strong>1</strong> deliveries need a person" in overview
        assert "401 invalid token" in overview
        _, page, _ = await comms.get("/dashboard/announcements")
        assert "slack: sent" in page and "x: failed" in page
        _, exported, _ = await comms.get("/dashboard/announcements.csv")
        states = {(r["id"], r["platform"], r["state"], r["error"]) for r in _csv(exported)}
        assert states == {("1", "slack", "sent", ""), ("1", "x", "failed", "401 invalid token")}
        _, attention, _ = await comms.get("/dashboard/attention.csv")
        assert [(r["platform"], r["state"], r["error"]) for r in _csv(attention)] == [
            ("x", "failed", "401 invalid token")
        ]
        _, rows, _ = await comms.get("/dashboard/announcements/1/deliveries.csv")
        assert {r["platform"]: r["state"] for r in _csv(rows)} == {"slack": "sent", "x": "failed"}
        _, detail, _ = await comms.get("/dashboard/announcements/1")
        assert "401 invalid token" in detail and "Retry x" in detail
        assert "Retry slack" not in detail
        status, _, _ = await comms.post("/dashboard/announcements/1/retry", {"platform": "x"})
        assert status == 303
        _, detail, _ = await comms.get("/dashboard/announcements/1")
        assert "Retried announcement #1: x: sent" in detail
        _, overview, _ = await comms.get("/dashboard/")
        assert "<strong>0</strong> deliveries need a person" in overview
        await comms.post("/dashboard/announcements/1/retry", {"platform": "x"})
        _, again, _ = await comms.get("/dashboard/announcements/1")
        assert "Announcement #1 has no failed or unknown deliveries for x." in again
        status, _, _ = await comms.post("/dashboard/announcements/1/retry", {"platform": "<x>"})
        assert status == 303
    assert [m.text for m in bot.x.sent if m.where.channel_id == "timeline"] == ["Foundation news"]
    retries = [r for r in await _audit(bot) if r.action == "announce.retry"]
    assert retries[-1].actor == "dashboard:cody"


async def test_mark_sent_an_unknown_delivery(bot: DashBot) -> None:
    bot.slack.fail_next(TransientPlatformError("slack", "read timeout", ambiguous=True))
    await bot.announce("now --to slack Maybe posted")
    async with client(bot.base, "ada") as admin:
        _, detail, _ = await admin.get("/dashboard/announcements/1")
        assert "unknown" in detail and "Mark slack sent" in detail
        await admin.post("/dashboard/announcements/1/mark-sent", {"platform": "slack"})
        _, detail, _ = await admin.get("/dashboard/announcements/1")
        assert "Marked announcement #1 as sent on slack." in detail
    [delivery] = await bot.runtime.announcements.deliveries(1)
    assert delivery.state == "sent" and delivery.error == "marked sent by dashboard:ada"
    assert ("dashboard:ada", "announce.mark-sent") in {
        (r.actor, r.action) for r in await _audit(bot)
    }


async def test_announcement_engagement_per_platform_side_by_side(bot: DashBot) -> None:
    await bot.announce("now --to slack,x Big news")
    for platform, kinds in {"slack": ["reaction", "reaction", "reply"], "x": ["reply"]}.items():
        for kind in kinds:
            await bot.runtime.engagement.record(
                Event(platform=platform, kind=kind, announcement_id=1, text="🎉")
            )
    async with client(bot.base, "mia") as moderator:
        _, page, _ = await moderator.get("/dashboard/announcements/1")
        _, exported, _ = await moderator.get("/dashboard/announcements/1.csv")
        _, listing, _ = await moderator.get("/dashboard/announcements")
    assert "<tr><th>reaction</th><td>2</td><td>0</td></tr>" in page
    assert '<tr class="total"><th>total</th><td>3</td><td>1</td></tr>' in page
    assert page.count("<polyline") == 2 and "slack: 3 engagements" in page
    assert {r["platform"]: r["total"] for r in _csv(exported)} == {"slack": "3", "x": "1"}
    assert "<td>4</td>" in listing


async def test_x_metrics_snapshots_show_as_a_curve_on_the_announcement(bot: DashBot) -> None:
    await bot.announce("now --to x Big news")
    for likes, reposts in ((3, 0), (12, 2), (40, 9)):
        await bot.runtime.engagement.record(
            Event(
                platform="x",
                kind="metrics",
                announcement_id=1,
                detail={"likes": likes, "reposts": reposts, "step": 0},
            )
        )
    async with client(bot.base, "mia") as moderator:
        _, page, _ = await moderator.get("/dashboard/announcements/1")
    assert "<tr><th>x likes</th><td>40</td></tr>" in page
    assert "<tr><th>x reposts</th><td>9</td></tr>" in page
    assert "x likes: 40" in page and "x reposts: 9" in page  # one line per metric
    assert "x step" not in page
    assert 'href="/dashboard/announcements/1/metrics.csv"' in page
    async with client(bot.base, "mia") as moderator:
        _, text, _ = await moderator.get("/dashboard/announcements/1/metrics.csv")
    rows = _csv(text)
    assert [(r["platform"], r["likes"], r["reposts"], r["step"]) for r in rows] == [
        ("x", "3", "0", "0"),
        ("x", "12", "2", "0"),
        ("x", "40", "9", "0"),
    ]
    assert rows[0]["impressions"] == ""  # not in the snapshot (access tier): empty, not 0


# --- overview and charts -----------------------------------------------------------------


async def test_overview_charts_questions_and_top_entries(bot: DashBot) -> None:
    await bot.ask("who is on the pytorch foundation governing board?", "m1")
    await bot.ask("what is the weather?", "m2")
    async with client(bot.base, "mia") as moderator:
        _, page, _ = await moderator.get("/dashboard/")
    assert "<strong>1</strong> questions answered" in page
    assert "<strong>1</strong> declined" in page
    assert ": 1 answered</title>" in page and ": 1 declined</title>" in page
    assert "Most used FAQ entries" in page
    [event] = [
        e
        for e in await bot.runtime.engagement.list(LogFilter(kind="answer"))
        if e.faq_entry_id is not None
    ]
    assert event.faq_entry_id is not None
    entry = await bot.runtime.faq.get(event.faq_entry_id)
    assert entry is not None
    assert f"<title>{escape(entry.question)}: 1</title>" in page


def test_chart_geometry() -> None:
    from datetime import UTC, date, datetime

    bars = questions_per_day([(date(2026, 11, 1), 3, 1), (date(2026, 11, 2), 0, 0)])
    answered, declined = bars.rects
    assert declined.y + declined.height == pytest.approx(answered.y)
    assert answered.height == pytest.approx(3 * declined.height)
    assert questions_per_day([(date(2026, 11, 1), 0, 0)]).empty
    top = top_entries([("Who? <b>", 4), ("When?", 2)])
    assert top.rects[0].width == pytest.approx(2 * top.rects[1].width)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    curves = engagement_curves(
        {"slack": [start + timedelta(hours=1)], "x": []}, start, start + timedelta(hours=4)
    )
    assert [line.title for line in curves.lines] == ["slack: 1 engagements", "x: 0 engagements"]


# --- ops ---------------------------------------------------------------------------------


async def test_metrics_count_questions_deliveries_errors_and_lateness(bot: DashBot) -> None:
    await bot.ask("who is on the pytorch foundation governing board?", "m1")
    await bot.ask("what is the weather?", "m2")
    bot.x.fail_next(PermanentPlatformError("x", "401 invalid token"))
    await bot.announce("now --to slack,x Metrics news")
    async with client(bot.base) as anonymous:
        status, text, resp = await anonymous.get("/metrics")
    assert status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    assert 'foundation_bot_questions_total{outcome="answered",platform="slack"} 1.0' in text
    assert 'foundation_bot_questions_total{outcome="declined",platform="slack"} 1.0' in text
    assert 'foundation_bot_deliveries_total{platform="slack",state="sent"} 1.0' in text
    assert 'foundation_bot_deliveries_total{platform="x",state="failed"} 1.0' in text
    assert 'foundation_bot_platform_errors_total{kind="permanent",platform="x"} 1.0' in text
    assert 'foundation_bot_delivery_lateness_seconds_count{platform="slack"} 1.0' in text


async def test_readyz_checks_the_database_and_every_adapter(bot: DashBot) -> None:
    async with client(bot.base) as anonymous:
        status, text, _ = await anonymous.get("/readyz")
        assert status == 200 and '"slack": "ok"' in text and '"database": "ok"' in text
        await bot.x.stop()
        status, text, _ = await anonymous.get("/readyz")
        assert status == 503 and '"x": "disconnected"' in text
        assert (await anonymous.get("/healthz"))[0] == 200
        async with database_away(bot.runtime.db):
            status, text, _ = await anonymous.get("/readyz")
        checks = json.loads(text)["checks"]
        assert status == 503 and checks["database"] == "unreachable"
        assert "127.0.0.1" not in text and "gone" not in text  # no host, user or database
        assert (await anonymous.get("/healthz"))[0] == 200  # alive, only not ready


# --- privacy -----------------------------------------------------------------------------


async def test_pseudonymized_users_are_stored_and_shown_as_keyed_hashes(db_url: str) -> None:
    config = dashboard_config(
        db_url,
        secrets={("privacy", "pseudonym_key"): "k" * 32},
        privacy={"pseudonymize_users": True},
    )
    async with dashboard_bot(config) as bot:
        await bot.ask("who is on the pytorch foundation governing board?", "m1", user="U-alice")
        pseudonym = Pseudonymizer("k" * 32)("U-alice")
        assert pseudonym.startswith("anon-") and pseudonym != Pseudonymizer("other")("U-alice")
        async with bot.runtime.db.session() as session:
            users = set(await session.scalars(select(EngagementEvent.user)))
        assert users == {pseudonym, None}
        async with client(bot.base, "mia") as moderator:
            _, page, _ = await moderator.get("/dashboard/log")
            assert pseudonym in page and "U-alice" not in page
            assert "User ids are pseudonyms" in page
            _, by_id, _ = await moderator.get("/dashboard/log?user=U-alice&kind=question")
            assert "1 rows" in by_id
        assert len(await bot.runtime.engagement.list(LogFilter(user=pseudonym))) == 1


async def test_retention_purge_deletes_old_engagement_and_is_scheduled(db_url: str) -> None:
    config = dashboard_config(db_url, privacy={"retention_days": 30})
    async with dashboard_bot(config) as bot:
        job = bot.runtime.scheduler.get_job("privacy-retention-purge")
        assert job is not None and job.trigger.interval == timedelta(hours=24)
        await bot.ask("what is the weather?", "m-old")  # declined: a review item too
        await bot.ask("who is on the pytorch foundation governing board?", "m-new")
        old = utcnow() - timedelta(days=31)
        async with bot.runtime.db.session() as session:
            await session.execute(
                update(EngagementEvent)
                .where(
                    EngagementEvent.ref.in_(
                        select(EngagementEvent.ref).where(EngagementEvent.message_id == "m-old")
                    )
                )
                .values(created_at=old)
            )
        assert await purge_engagement(bot.runtime.db, 30) == 2
        assert await purge_engagement(bot.runtime.db, 30) == 0
        left = await bot.runtime.engagement.list(LogFilter())
        assert [e.kind for e in left] == ["question", "answer"]
        reviews = await bot.runtime.engagement.open_reviews()
        assert len(reviews) == 1 and reviews[0].engagement_id is None  # still for moderators


def test_config_requires_the_pseudonym_key() -> None:
    from bot.config import load_config
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match="FOUNDATION_BOT_PSEUDONYM_KEY"):
        load_config(
            None, environ={"FOUNDATION_BOT_CONFIG": _toml("[privacy]\npseudonymize_users = true\n")}
        )
    config = load_config(
        None,
        environ={
            "FOUNDATION_BOT_CONFIG": _toml("[privacy]\npseudonymize_users = true\n"),
            "FOUNDATION_BOT_PSEUDONYM_KEY": "secret-key",
        },
    )
    assert "secret-key" not in repr(config)


_TMP: list[Path] = []


def _toml(text: str) -> str:
    import tempfile

    handle = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)  # noqa: SIM115
    with handle:
        handle.write(text)
    _TMP.append(Path(handle.name))
    return handle.name


# --- command line ------------------------------------------------------------------------


def test_users_command_adds_lists_and_removes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bot.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "bot.db"}"\n')
    secret = tmp_path / "pw"
    secret.write_text("a-long-password\n")
    base = ["--config", str(config), "users"]
    assert main([*base, "add", "Ada", "--role", "admin", "--password-file", str(secret)]) == 0
    assert "added user 'ada' (admin)" in capsys.readouterr().out
    assert main([*base, "add", "ada", "--role", "comms", "--password-file", str(secret)]) == 2
    assert "a user named 'ada' exists already; nothing changed" in capsys.readouterr().err
    short = tmp_path / "short"
    short.write_text("short\n")
    assert main([*base, "add", "bob", "--role", "comms", "--password-file", str(short)]) == 2
    assert "at least 10 characters; nothing changed" in capsys.readouterr().err
    assert (
        main([*base, "add", "eve", "--role", "moderator"], stdin=io.StringIO("piped-password-1\n"))
        == 0
    )
    capsys.readouterr()
    assert main([*base, "list"]) == 0
    listing = capsys.readouterr().out
    assert "ada" in listing and "eve" in listing and "moderator" in listing
    assert "bob" not in listing and "a-long-password" not in listing
    assert main([*base, "remove", "eve"]) == 0
    assert main([*base, "remove", "eve"]) == 2
    assert "no user named 'eve'" in capsys.readouterr().err


async def test_errors_show_one_line_never_a_traceback(
    bot: DashBot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.errors import StoreError

    async def unreachable() -> None:
        raise StoreError("cannot reach the database at sqlite:///x: disk I/O error")

    async def broken() -> None:
        raise RuntimeError("secret internals")

    async with client(bot.base, "mia") as moderator:
        monkeypatch.setattr(bot.runtime.faq, "all", unreachable)
        status, page, _ = await moderator.get("/dashboard/faq")
        assert status == 503
        assert "The database is unreachable; try again shortly." in page
        monkeypatch.setattr(bot.runtime.faq, "all", broken)
        status, page, _ = await moderator.get("/dashboard/faq")
        assert status == 500 and "Something went wrong; the error was logged." in page
        assert "secret internals" not in page and "Traceback" not in page
        status, page, _ = await moderator.get("/dashboard/no-such-page")
        assert status == 404 and "Not found" in page
    assert "dashboard request failed path=/dashboard/faq" in caplog.text


async def test_odd_ids_and_pages_are_not_found_not_errors(bot: DashBot) -> None:
    async with client(bot.base, "ada") as admin:
        assert (await admin.get("/dashboard/faq/99999999999999999999999"))[0] == 404
        assert (await admin.get("/dashboard/announcements/99999999999999999999"))[0] == 404
        assert (await admin.get("/dashboard/log?page=99999999999999999999999"))[0] == 200
        await admin.get("/dashboard/review")
        status, _, _ = await admin.post(
            "/dashboard/review/phrasing",
            {"entry_id": "²", "phrasing": "x", "review_id": "99999999999999999999"},
        )
        assert status == 303
        _, page, _ = await admin.get("/dashboard/review")
        assert "Choose an FAQ entry; nothing changed." in page


async def test_login_limiter_forgets_failures_after_the_window(database: Database) -> None:
    from bot.store.users import LoginLimiter

    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    now = [start]
    limiter = LoginLimiter(database, 2, window=timedelta(seconds=60), clock=lambda: now[0])
    assert (await limiter.begin("1", "mia")).allowed  # a wrong password: the slot is kept
    now[0] = start + timedelta(seconds=10)
    assert (await limiter.begin("1", "mia")).allowed
    assert (await limiter.begin("1", "other")).wait == pytest.approx(50)  # the address
    assert (await limiter.begin("1", None)).wait == pytest.approx(50)
    assert (await limiter.begin("2", "other")).allowed
    right = await limiter.begin("3", "mia")  # mia is over her limit; address 3 never failed
    assert right.allowed
    await limiter.succeeded(right)
    assert (await limiter.begin("1", None)).wait > 0  # a right password elsewhere keeps it
    now[0] = start + timedelta(seconds=61)
    assert (await limiter.begin("1", None)).allowed


async def test_parallel_guesses_cannot_race_past_the_login_limit(bot: DashBot) -> None:
    """Each attempt is counted before its password is checked, so 40 guesses sent at once
    get no more password checks than the limit (3 here) allows."""

    async def guess() -> int:
        async with client(bot.base) as browser:
            return await browser.login("mia", "wrong-password")

    statuses = await asyncio.gather(*(guess() for _ in range(40)))
    assert statuses.count(401) == 3
    assert statuses.count(429) == 37
    checked = [
        r
        for r in await _audit(bot)
        if r.action == "dashboard.login" and "wrong name or password" in (r.detail or "")
    ]
    assert len(checked) == 3


async def test_failing_for_an_account_from_other_addresses_cannot_lock_its_owner_out(
    db_url: str,
) -> None:
    """Someone who knows the admin's name fails from three addresses; the admin, from an
    address that has not failed, still logs in; the guessers' addresses stay refused and a
    new guesser gets one guess, not three."""
    config = dashboard_config(db_url, web={"trusted_proxies": ["127.0.0.0/8"]})
    async with dashboard_bot(config) as bot:

        async def login(client_ip: str, password: str) -> int:
            async with client(bot.base) as browser:
                browser.http.headers["X-Forwarded-For"] = f"{client_ip}, 127.0.0.9"
                return await browser.login("ada", password)

        for n in range(3):
            assert await login(f"203.0.113.{n}", "wrong-password") == 401
        assert await login("198.51.100.7", PASSWORDS["ada"]) == 303  # the real admin
        for n in range(3):
            assert await login(f"203.0.113.{n}", "wrong-password") == 401  # still counted
        assert await login("203.0.113.0", PASSWORDS["ada"]) == 429  # a failed address
        assert await login("192.0.2.50", "wrong-password") == 401  # a new guesser: one try
        assert await login("192.0.2.50", "another-guess") == 429


async def test_login_limit_is_shared_by_every_instance_on_the_database(pg_url: str) -> None:
    """Behind a load balancer, guesses spread over instances still hit one limit."""
    async with (
        dashboard_bot(dashboard_config(pg_url)) as first,
        dashboard_bot(dashboard_config(pg_url), add_users=False) as second,
    ):
        async with client(first.base) as browser:
            for _ in range(3):
                assert await browser.login("mia", "wrong-password") == 401
        async with client(second.base) as elsewhere:
            await elsewhere.get("/dashboard/login")
            status, text, _ = await elsewhere.post(
                "/dashboard/login", {"name": "mia", "password": "mia-password-1"}
            )
            assert status == 429 and "Too many failed logins" in text


async def test_behind_a_trusted_proxy_each_client_has_its_own_login_limit(db_url: str) -> None:
    """Behind a load balancer every request comes from the balancer's address: the client's
    own comes from X-Forwarded-For, believed only from ``web.trusted_proxies``."""
    config = dashboard_config(db_url, web={"trusted_proxies": ["127.0.0.0/8"]})
    async with dashboard_bot(config) as bot:

        async def login(client_ip: str, name: str, password: str) -> int:
            async with client(bot.base) as browser:
                browser.http.headers["X-Forwarded-For"] = f"{client_ip}, 127.0.0.9"
                return await browser.login(name, password)

        for _ in range(3):
            assert await login("203.0.113.5", "nobody", "guess-123456") == 401
        assert await login("203.0.113.5", "mia", "mia-password-1") == 429  # that client
        assert await login("198.51.100.7", "mia", "mia-password-1") == 303  # anyone else
        refused = [r for r in await _audit(bot) if r.action == "dashboard.login"]
        assert any("from 203.0.113.5" in (r.detail or "") for r in refused)


async def test_without_trusted_proxies_a_forwarded_header_cannot_dodge_the_limit(
    bot: DashBot,
) -> None:
    for n in range(3):
        async with client(bot.base) as browser:
            browser.http.headers["X-Forwarded-For"] = f"203.0.113.{n}"
            assert await browser.login("nobody", "guess-123456") == 401
    async with client(bot.base) as browser:
        browser.http.headers["X-Forwarded-For"] = "198.51.100.7"
        assert await browser.login("mia", "mia-password-1") == 429


async def test_a_mistyped_name_is_neither_audited_nor_stored_as_typed(bot: DashBot) -> None:
    """Someone who types their password into the name field leaves no copy of it."""
    typed = "Tr0ub4dor&3-secret"
    async with client(bot.base) as browser:
        assert await browser.login(typed, "whatever-123") == 401
        assert await browser.login("mia", "wrong-password") == 401
    refused = [r for r in await _audit(bot) if r.action == "dashboard.login"]
    assert sorted(r.actor for r in refused) == ["dashboard:?", "dashboard:mia"]
    assert all(typed.lower() not in f"{r.actor} {r.detail}".lower() for r in refused)
    async with bot.runtime.db.session() as session:
        keys = (await session.scalars(select(LoginFailure.key))).all()
    # The unknown name is limited by address only; the real user by address, name and the
    # (name, address) pair.
    assert len(keys) == 4 and all(typed.lower() not in key for key in keys)


async def test_sessions_expire_after_the_configured_idle_time(bot: DashBot) -> None:
    from bot.store.users import UserStore

    users = UserStore(bot.runtime.db)
    user = await users.authenticate("mia", "mia-password-1")
    assert user is not None and await users.authenticate("mia", "wrong") is None
    token, csrf = await users.open_session(user.id, timedelta(hours=1))
    live = await users.session_for(token, timedelta(hours=1))
    assert live is not None and (live.name, live.role, live.csrf_token) == (
        "mia",
        "moderator",
        csrf,
    )
    later = utcnow() + timedelta(hours=2)
    assert await users.session_for(token, timedelta(hours=1), now=later) is None
    assert await users.session_for("not-a-token", timedelta(hours=1)) is None


def test_logs_command_finds_a_pseudonymized_user_by_platform_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bot.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "bot.db"}"\n'
        "[privacy]\npseudonymize_users = true\n"
    )
    monkeypatch.setenv("FOUNDATION_BOT_PSEUDONYM_KEY", "cli-key")
    base = ["--config", str(config)]
    assert main([*base, "ask", "--user", "U-alice", "who is on the board?"]) == 0
    capsys.readouterr()
    assert main([*base, "logs", "--user", "U-alice", "--format", "csv"]) == 0
    rows = _csv(capsys.readouterr().out)
    assert [r["user"] for r in rows] == [Pseudonymizer("cli-key")("U-alice")]

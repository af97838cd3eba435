"""The dashboard end to end in real headless Chromium (Debian's ``chromium`` package, driven
by Playwright; no browser is ever downloaded): log in, filter the log, export CSV, turn an
unanswered question into an FAQ entry and hear ``foundation-bot ask`` answer it, retry a failed
delivery, and check that an injected ``<script>`` question does not run. Each main page is
saved as a screenshot: under ``docs/screenshots/`` for the README when
``FOUNDATION_BOT_SCREENSHOTS=1`` is set (to refresh them), else in a temporary folder, so a
test run never changes the working tree."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy import update

from bot.errors import PermanentPlatformError
from bot.events import utcnow
from bot.store.engagement import Event
from bot.store.models import Delivery, EngagementEvent
from tests.dashboard_helpers import PASSWORDS, DashBot, dashboard_bot, dashboard_config
from tests.waiting import PATIENCE

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = (
    Path(__file__).resolve().parent.parent / "docs" / "screenshots"
    if os.environ.get("FOUNDATION_BOT_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "foundation-bot-screenshots"
)
NEW_QUESTION = "Is there a PyTorch Foundation meetup in Lisbon this spring?"

pytestmark = pytest.mark.browser


def _chromium_or_skip() -> None:
    """Under CI a missing browser fails the run: these tests must never silently vanish."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing under CI: .ci/run must install chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    _chromium_or_skip()
    # Playwright's expect() gives up after 5 s by default: too short for a busy CI machine.
    # Waits end as soon as the page is right, so a long deadline costs nothing when it is.
    expect.set_options(timeout=PATIENCE * 1000)
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[DashBot]:
    config = dashboard_config(
        f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", dashboard={"page_size": 10}
    )
    async with dashboard_bot(config) as running:
        yield running


async def _page(browser: Browser, bot: DashBot, user: str = "ada") -> Page:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 860}, accept_downloads=True
    )
    page = await context.new_page()
    await page.goto(bot.base + "/dashboard/")
    await expect(page).to_have_url(f"{bot.base}/dashboard/login?next=/dashboard/")
    await page.get_by_label("User name").fill(user)
    await page.get_by_label("Password").fill(PASSWORDS[user])
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return page


async def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def _seed(bot: DashBot) -> None:
    """A morning's worth of questions and two announcements, one with a failed X post."""
    questions = [
        "who is on the pytorch foundation governing board?",
        "will my pytorch code have to change?",
        "does meta still invest in pytorch?",
        "what is the weather in Paris?",
        "who is on the pytorch foundation governing board?",
        "what is the linux foundation?",
        "can you help me fix my CUDA install?",
    ]
    for i, text in enumerate(questions):
        await bot.ask(text, f"seed-{i}", user=f"U-{i % 3}")
    await bot.announce("now --to slack The PyTorch Foundation is live!")
    bot.x.fail_next(PermanentPlatformError("x", "401 invalid token"))
    await bot.announce("now --to slack,x Join the first PyTorch Foundation community call.")
    # Announcement 1 went out six hours ago; people engaged with it since, more on Slack.
    posted = utcnow() - timedelta(hours=6)
    kinds = {"slack": ["reaction"] * 7 + ["reply"] * 3, "x": ["reply"] * 2 + ["reaction"] * 3}
    for platform, platform_kinds in kinds.items():
        ids = await bot.runtime.engagement.record(
            *(
                Event(platform=platform, kind=k, announcement_id=1, text="🎉")
                for k in platform_kinds
            )
        )
        async with bot.runtime.db.session() as session:
            for n, ident in enumerate(ids):
                minutes = 5 + 30 * n**1.3 / (2 if platform == "slack" else 1)
                await session.execute(
                    update(EngagementEvent)
                    .where(EngagementEvent.id == ident)
                    .values(created_at=posted + timedelta(minutes=minutes))
                )
    async with bot.runtime.db.session() as session:
        await session.execute(
            update(Delivery).where(Delivery.announcement_id == 1).values(sent_at=posted)
        )


async def test_log_in_filter_the_log_and_export_csv(browser: Browser, bot: DashBot) -> None:
    await _seed(bot)
    page = await _page(browser, bot, "mia")
    await _shot(page, "overview")
    await page.get_by_role("link", name="Engagement log").click()
    await page.get_by_label("Search").fill("governing board")
    await page.get_by_label("Kind").select_option("question")
    await page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.log tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_contain_text("who is on the pytorch foundation governing board?")
    await expect(page.get_by_text("Page 1 of 1 · 2 rows")).to_be_visible()
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Export CSV").click()
    download = await info.value
    assert download.suggested_filename == "engagement-log.csv"
    exported = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    records = list(csv.DictReader(io.StringIO(exported)))
    assert [r["kind"] for r in records] == ["question", "question"]
    assert all("governing board" in r["text"] for r in records)
    await page.get_by_role("link", name="Clear").click()
    await expect(page.get_by_text("Page 1 of 4 · 33 rows")).to_be_visible()
    await _shot(page, "engagement-log")
    await page.get_by_role("link", name="FAQ").click()
    await _shot(page, "faq")


async def test_unanswered_question_becomes_an_faq_entry_the_cli_answers(
    browser: Browser, bot: DashBot, tmp_path: Path
) -> None:
    await _seed(bot)
    await bot.ask("is there a pytorch foundation meetup in lisbon this spring??", "m-new1")
    declined = await bot.ask(NEW_QUESTION, "m-new2")
    assert "I won't guess" in declined
    page = await _page(browser, bot, "mia")
    await page.get_by_role("link", name="Review queue").click()
    heading = page.get_by_role("heading", name=NEW_QUESTION, exact=True)
    group = page.locator("section.group").filter(has=heading)
    await expect(group.locator(".meta")).to_contain_text("2 questions")
    await _shot(page, "review-queue")
    await group.get_by_text("Create FAQ entry").click()
    await group.get_by_label("Answer").fill("Yes: the Lisbon community meetup is on 12 April.")
    await group.get_by_label("Source URL").fill("https://events.example.org/lisbon")
    await group.get_by_role("button", name="Create entry").click()
    await expect(page.get_by_role("status")).to_contain_text("Created FAQ entry")
    await expect(heading).to_have_count(0)

    env = {**os.environ, "FOUNDATION_BOT_DATABASE_URL": bot.runtime.db.url}
    env.pop("FOUNDATION_BOT_CONFIG", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "ask",
        NEW_QUESTION,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode().startswith("Yes: the Lisbon community meetup is on 12 April.")
    assert "Source: https://events.example.org/lisbon" in out.decode()


async def test_retry_a_failed_delivery(browser: Browser, bot: DashBot) -> None:
    await _seed(bot)
    page = await _page(browser, bot, "cody")
    await page.get_by_role("link", name="Announcements").click()
    await expect(page.get_by_text("x: failed")).to_be_visible()
    await _shot(page, "announcements")
    await page.get_by_role("link", name="#2").click()
    row = page.locator("#delivery-x")
    await expect(row).to_contain_text("401 invalid token")
    await row.get_by_role("button", name="Retry x").click()
    await expect(page.get_by_role("status")).to_have_text("Retried announcement #2: x: sent")
    await expect(page.locator("#delivery-x .state")).to_have_text("sent")
    await expect(page.get_by_role("button", name="Retry x")).to_have_count(0)
    await page.goto(bot.base + "/dashboard/announcements/1")
    await expect(page.locator("svg polyline")).to_have_count(2)  # slack and x side by side
    await _shot(page, "announcement")
    posted = [m.text for m in bot.x.sent if m.where.channel_id == "timeline"]
    assert posted == ["Join the first PyTorch Foundation community call."]


async def test_injected_script_question_does_not_run(browser: Browser, bot: DashBot) -> None:
    evil = (
        "<script>window.pwned = 1; document.title = 'pwned'</script>"
        "<img src=x onerror=\"window.pwned = 2; alert('xss')\"> how do I join?"
    )
    await bot.ask(evil, "m-evil")
    page = await _page(browser, bot, "ada")
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    for path in ("/dashboard/log", "/dashboard/review", "/dashboard/audit"):
        await page.goto(bot.base + path)
        assert await page.evaluate("typeof window.pwned") == "undefined"
        assert await page.title() != "pwned"
        assert await page.locator("img[src=x]").count() == 0
    await page.goto(bot.base + "/dashboard/log?kind=question")
    await expect(page.locator("td.text").first).to_have_text(evil)
    await page.goto(bot.base + "/dashboard/review")
    await expect(page.get_by_role("heading", name=evil)).to_be_visible()
    await page.wait_for_timeout(200)
    assert dialogs == []
    await page.goto(bot.base + "/dashboard/audit")
    await _shot(page, "audit-log")


async def test_login_page(browser: Browser, bot: DashBot) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 640})
    page = await context.new_page()
    await page.goto(bot.base + "/dashboard/log")
    await page.get_by_label("User name").fill("mia")
    await page.get_by_label("Password").fill("not-her-password")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    await _shot(page, "login")
    await page.get_by_label("Password").fill(PASSWORDS["mia"])
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Engagement log")).to_be_visible()
    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["fb_session"]["httpOnly"] and cookies["fb_session"]["sameSite"] == "Lax"
    assert await page.evaluate("document.cookie") == ""


async def test_a_moderator_picks_the_questions_of_a_group_an_action_applies_to(
    browser: Browser, bot: DashBot
) -> None:
    await bot.ask("who chairs the money tribunal", "m-1")
    await bot.ask("who chairs the money tribunal???", "m-2")
    await bot.ask("is the foundation hiring", "m-3")
    page = await _page(browser, bot, "mia")
    await page.get_by_role("link", name="Review queue").click()
    await expect(page.locator("section.group")).to_have_count(2)
    group = page.locator("section.group").filter(has_text="money tribunal")
    await expect(group.get_by_role("checkbox")).to_have_count(2)
    await group.get_by_label("who chairs the money tribunal???").uncheck()
    await group.get_by_text("Add as phrasing of entry…").click()
    await group.get_by_label("Entry").select_option(index=0)
    await group.get_by_role("button", name="Add phrasing").click()
    await expect(page.get_by_role("status")).to_contain_text(
        "Added \u201cwho chairs the money tribunal\u201d as a phrasing"
    )
    left = page.locator("section.group")
    await expect(left).to_have_count(2)  # the unticked question and the unrelated one
    await expect(page.get_by_label("who chairs the money tribunal???")).to_be_checked()
    await expect(page.get_by_label("who chairs the money tribunal", exact=True)).to_have_count(0)


async def test_long_text_is_cut_in_lists_with_the_whole_text_a_click_away(
    browser: Browser, bot: DashBot
) -> None:
    """A 5,000-character question and command once made the review queue a giant heading
    and the audit page 8,492 px wide."""
    question = "why" + "y" * 1996 + "?"  # the longest question the bot reads
    await bot.ask(question, "m-long")
    refused = await bot.ask("why" + "y" * 4996 + "?", "m-too-long")
    assert refused.startswith("That message is too long for me")
    assert "moderators" not in refused  # not queued: there is nothing to answer yet
    await bot.announce("z" * 5000)
    page = await _page(browser, bot, "ada")
    for path in ("/dashboard/review", "/dashboard/audit", "/dashboard/log"):
        await page.goto(bot.base + path)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, (path, width)
    await page.goto(bot.base + "/dashboard/review")
    heading = page.locator("section.group h2")
    assert len(await heading.inner_text()) <= 160
    await expect(page.locator("section.group")).to_have_count(1)  # the refused one is not
    await page.get_by_text("Full text (2000 characters)").first.click()
    await expect(page.locator("section.group .full-text").first).to_have_text(question)

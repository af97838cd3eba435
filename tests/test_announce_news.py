"""Published announcements feed the answers; discussion threads link questions to them."""

from __future__ import annotations

from bot.events import Conversation, IncomingMessage, Reaction
from bot.store.engagement import LogFilter
from tests.announce_helpers import MEMBER, running_bot


def ask(text: str, where: Conversation | None = None, mid: str = "q1") -> IncomingMessage:
    return IncomingMessage(
        where=where or Conversation("slack", "C-general"),
        author=MEMBER,
        text=text,
        message_id=mid,
        mentions_bot=where is None,
    )


async def test_latest_and_next_announcement_are_answered_live(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        await bot.slack.inject(ask("what's the latest news?"))
        assert bot.slack.sent[-1].text == "No announcements have been posted yet."
        await bot.announce("now --to slack The PyTorch Foundation has a new website for members.")
        await bot.announce("schedule --at 2026-11-30T10:00 --to slack Secret embargoed details")
        await bot.runtime.knowledge.reload()
        await bot.slack.inject(ask("what's the latest news?", mid="q2"))
        latest = bot.slack.sent[-1].text
        assert "The PyTorch Foundation has a new website for members." in latest
        await bot.slack.inject(ask("when is the next announcement?", mid="q3"))
        upcoming = bot.slack.sent[-1].text
        assert upcoming == "The next announcement is scheduled for 2026-11-30 09:00 UTC."
        assert "Secret" not in upcoming
        await bot.announce("hold")
        await bot.slack.inject(ask("when is the next announcement?", mid="q4"))
        assert bot.slack.sent[-1].text == "No announcement is scheduled right now."


async def test_published_announcement_is_searchable(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        await bot.announce(
            "now --to slack Registration for the PyTorch Foundation contributor summit opens "
            "on Monday. Tickets are free for all maintainers."
        )
        await bot.runtime.knowledge.reload()
        await bot.slack.inject(ask("when does registration for the contributor summit open?"))
        reply = bot.slack.sent[-1].text
        assert reply.startswith("Registration for the PyTorch Foundation contributor summit")
        [question] = await bot.runtime.engagement.list(LogFilter(kind="question"))
        assert question.announcement_id == 1


async def test_discussion_thread_links_questions_and_reactions(db_url: str) -> None:
    async with running_bot(db_url, discussion=["slack"]) as bot:
        await bot.announce("now --to slack The PyTorch Foundation is live.")
        [post] = [m for m in bot.slack.sent if m.where.channel_id == "C-news" and not m.reply_to]
        opener = next(m for m in bot.slack.sent if m.reply_to == "slack-1")
        assert "Reply in this thread" in opener.text
        thread = Conversation("slack", "C-news", thread_id="slack-1")
        await bot.slack.inject(ask("who is on the governing board?", where=thread, mid="t1"))
        answer = bot.slack.sent[-1]
        assert "Nvidia" in answer.text and answer.where.thread_id == "slack-1"
        await bot.slack.inject(
            Reaction(Conversation("slack", "C-news"), MEMBER, "slack-1", "tada", added=True)
        )
        question = (await bot.runtime.engagement.list(LogFilter(kind="question")))[0]
        reaction = (await bot.runtime.engagement.list(LogFilter(kind="reaction")))[0]
        assert question.announcement_id == 1 and reaction.announcement_id == 1
        assert post.text == "The PyTorch Foundation is live."

"""The end of the chain: decide what an event means, answer, run commands, log engagement."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from adapters.base import Adapter
from bot.answering import Answer, Knowledge
from bot.commands import CommandRouter
from bot.errors import PlatformError, StoreError, TransientPlatformError
from bot.events import (
    ChoicePicked,
    Conversation,
    Feedback,
    InboundEvent,
    IncomingMessage,
    OutgoingMessage,
    Reaction,
    SentMessage,
    SlashCommand,
)
from bot.store.engagement import EngagementLog, Event
from bot.store.models import EngagementEvent, ReviewItem
from bot.telemetry import Metrics

log = logging.getLogger(__name__)

SLOW_DOWN = "You're asking faster than I can keep up; please wait a minute and try again."
THANKS_HELPFUL = "Thanks for the feedback!"
THANKS_UNHELPFUL = "Thanks, that helps us improve. A moderator will review this answer."
ESCALATED = "I've asked a moderator to look at your question."
FEEDBACK_NOT_SAVED = (
    "Thanks, but I couldn't save your feedback just now; please try again in a few minutes."
)


class Outbox:
    """Sends through the adapter of each platform; platform errors are logged, not raised."""

    def __init__(self, adapters: Mapping[str, Adapter], metrics: Metrics | None = None) -> None:
        self._adapters = adapters
        self._metrics = metrics

    def has(self, platform: str) -> bool:
        """Whether an adapter for ``platform`` is running."""
        return platform in self._adapters

    async def send(self, message: OutgoingMessage) -> SentMessage | None:
        """Post ``message``; None if there is no adapter or the platform failed."""
        adapter = self._adapters.get(message.where.platform)
        if adapter is None:
            log.warning("no adapter for platform=%s", message.where.platform)
            return None
        try:
            return await adapter.send(message)
        except PlatformError as exc:
            log.warning("reply failed platform=%s error=%s", exc.platform, exc.reason)
            if self._metrics is not None:
                self._metrics.platform_error(exc.platform, isinstance(exc, TransientPlatformError))
            return None


class Dispatcher:
    """Handles each normalized event; never raises into the adapter."""

    def __init__(
        self,
        *,
        knowledge: Knowledge,
        engagement: EngagementLog,
        router: CommandRouter,
        outbox: Outbox,
        reply_in_thread: bool = True,
        moderator_channels: Mapping[str, str] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._knowledge = knowledge
        self._log = engagement
        self._router = router
        self._outbox = outbox
        self._reply_in_thread = reply_in_thread
        self._moderators = dict(moderator_channels or {})

    async def __call__(self, event: InboundEvent) -> None:
        if isinstance(event, IncomingMessage):
            await self.on_message(event)
        elif isinstance(event, SlashCommand):
            await self.on_command(event)
        elif isinstance(event, Reaction):
            await self.on_reaction(event)
        elif isinstance(event, Feedback):
            await self.on_feedback(event)
        else:
            await self.on_choice(event)

    async def slow_down(self, msg: IncomingMessage) -> None:
        """Tell a user they hit the rate limit (called by the chain once per burst)."""
        await self._outbox.send(self._reply(msg, SLOW_DOWN))

    def _reply(self, msg: IncomingMessage, text: str, token: str | None = None) -> OutgoingMessage:
        where = msg.where
        return OutgoingMessage(
            where=where,
            text=text,
            reply_to=msg.message_id if (self._reply_in_thread or where.thread_id) else None,
            feedback_token=token,
            handle=msg.handle,
        )

    async def _thread_announcement(self, msg: IncomingMessage) -> tuple[bool, int | None]:
        """(is a bot thread, linked announcement id) for the message's thread."""
        if msg.where.thread_id is None:
            return False, None
        thread = await self._log.find_thread(
            msg.where.platform, msg.where.channel_id, msg.where.thread_id
        )
        return (thread is not None, thread.announcement_id if thread else None)

    async def on_message(self, msg: IncomingMessage) -> None:
        """Answer a question addressed to the bot; ignore other chatter.

        The answer comes from memory, so a database outage costs the log entry, not the reply.
        """
        try:
            in_bot_thread, announcement_id = await self._thread_announcement(msg)
        except StoreError as exc:
            log.error("thread lookup failed, treating as a new conversation: %s", exc)
            in_bot_thread, announcement_id = False, None
        if not (msg.mentions_bot or msg.where.is_direct or in_bot_thread):
            await log_announcement_reply(self._log, msg)
            return
        answer = await self._knowledge.respond(msg.text)
        if self._metrics is not None:
            self._metrics.question(msg.where.platform, answer.answered)
        ref = uuid.uuid4().hex
        sent = await self._outbox.send(
            self._reply(msg, answer.text, ref if answer.answered else None)
        )
        thread = None
        threads = self._reply_in_thread and msg.where.platform != "console"
        if sent is not None and threads and not in_bot_thread:
            thread_id = sent.thread_id or msg.where.thread_id or msg.message_id
            thread = (msg.where.platform, msg.where.channel_id, thread_id)
        await record_exchange(
            self._log,
            msg,
            answer,
            ref,
            sent,
            announcement_id or answer.announcement_id,
            thread=thread,
        )

    async def on_command(self, cmd: SlashCommand) -> None:
        """Run a command and answer the caller only; then log it (a database outage costs
        the log entry, not the answer)."""
        reply = await self._router.dispatch(cmd)
        await self._outbox.send(
            OutgoingMessage(
                where=cmd.where, text=reply, ephemeral_to=cmd.author.id, handle=cmd.handle
            )
        )
        try:
            await self._log.record(
                Event(
                    platform=cmd.where.platform,
                    kind="command",
                    channel=cmd.where.channel_id,
                    user=cmd.author.id,
                    text=f"/{cmd.name} {cmd.text}".strip(),
                )
            )
        except StoreError as exc:
            log.error("command not logged platform=%s: %s", cmd.where.platform, exc)

    async def on_reaction(self, reaction: Reaction) -> None:
        """Log reactions on the bot's answers and announcements; ignore the rest."""
        where = reaction.where
        target = await self._log.find_bot_message(where.platform, reaction.message_id)
        if target is None:
            return
        await self._log.record(
            Event(
                platform=where.platform,
                kind="reaction",
                channel=where.channel_id,
                user=reaction.author.id,
                text=reaction.emoji,
                faq_entry_id=target.faq_entry_id,
                announcement_id=target.announcement_id,
                message_id=reaction.message_id,
                url=reaction.url,
                ref=target.ref,
                detail={"emoji": reaction.emoji, "added": reaction.added},
            )
        )

    async def on_feedback(self, fb: Feedback) -> None:
        """Record a helpful / not-helpful click and acknowledge it to the clicker."""
        where = fb.where
        try:
            question = await self._record_feedback(fb)
        except StoreError as exc:
            # The click still gets an answer, an honest one: nothing was saved.
            log.error("feedback not recorded: %s", exc)
            await self._outbox.send(
                OutgoingMessage(
                    where=where,
                    text=FEEDBACK_NOT_SAVED,
                    ephemeral_to=fb.author.id,
                    handle=fb.handle,
                )
            )
            return
        ack = THANKS_HELPFUL if fb.helpful else THANKS_UNHELPFUL
        if fb.escalate and question is not None:
            channel = self._moderators.get(where.platform)
            if channel:
                await self._outbox.send(
                    OutgoingMessage(
                        where=Conversation(where.platform, channel),
                        text=f"A user asked for a moderator. Question: {question.text}\n"
                        f"(asked by {question.user} in {question.channel})",
                    )
                )
                ack = ESCALATED
        offer = not fb.helpful and not fb.escalate and where.platform in self._moderators
        await self._outbox.send(
            OutgoingMessage(
                where=where,
                text=ack,
                ephemeral_to=fb.author.id,
                handle=fb.handle,
                escalation_token=fb.token if offer else None,
            )
        )

    async def on_choice(self, picked: ChoicePicked) -> None:
        """A suggestion picked from a clarification (answered in the next commit)."""
        log.info("choice picked platform=%s (not handled yet)", picked.where.platform)

    async def _record_feedback(self, fb: Feedback) -> EngagementEvent | None:
        """Log the click (and queue a 👎 for review); returns the question it was about."""
        where = fb.where
        question = await self._log.question_for(fb.token)
        review = None
        if not fb.helpful and question is not None:
            review = ReviewItem(
                platform=where.platform,
                question=question.text or "",
                reason="escalated" if fb.escalate else "thumbs_down",
                best_entry_id=question.faq_entry_id,
                score=question.score,
            )
        await self._log.record(
            Event(
                platform=where.platform,
                kind="feedback",
                channel=where.channel_id,
                user=fb.author.id,
                text="helpful" if fb.helpful else "not helpful",
                faq_entry_id=question.faq_entry_id if question else None,
                announcement_id=question.announcement_id if question else None,
                ref=fb.token,
                detail={"helpful": fb.helpful, "escalate": fb.escalate},
            ),
            review=review,
        )
        return question


async def record_exchange(
    engagement: EngagementLog,
    msg: IncomingMessage,
    answer: Answer,
    ref: str,
    sent: SentMessage | None,
    announcement_id: int | None = None,
    *,
    thread: tuple[str, str, str] | None = None,
    extra: dict[str, object] | None = None,
) -> None:
    """Log a question, the bot's answer or decline, queue it for moderators if needed, and
    remember the bot's thread — one transaction. ``extra`` is merged into the reply's detail
    (e.g. ``{"delivery": "silent"}`` for a decline deliberately not posted)."""
    where = msg.where
    question = Event(
        platform=where.platform,
        kind="question",
        channel=where.channel_id,
        user=msg.author.id,
        text=msg.text,
        faq_entry_id=answer.entry_id,
        announcement_id=announcement_id,
        score=answer.score,
        message_id=msg.message_id,
        thread_id=where.thread_id,
        url=msg.url,
        ref=ref,
    )
    detail: dict[str, object] = {"reason": answer.reason}
    if sent is None:
        detail["delivery"] = "failed"
    detail.update(extra or {})
    reply = Event(
        platform=where.platform,
        kind="answer" if answer.answered else "declined",
        channel=where.channel_id,
        text=answer.text,
        faq_entry_id=answer.entry_id,
        announcement_id=announcement_id,
        score=answer.score,
        message_id=sent.message_id if sent else None,
        thread_id=sent.thread_id if sent else where.thread_id,
        url=sent.url if sent else None,
        ref=ref,
        detail=detail,
    )
    review = None
    if answer.needs_review:
        review = ReviewItem(
            platform=where.platform,
            question=msg.text,
            reason="low_confidence" if answer.reason == "low_confidence" else "declined",
            best_entry_id=answer.entry_id,
            score=answer.score,
        )
    await engagement.record(question, reply, review=review, thread=thread)


async def log_announcement_reply(log: EngagementLog, msg: IncomingMessage) -> None:
    """A reply under a posted announcement is engagement on it (no answer is given)."""
    if msg.where.thread_id is None:
        return
    target = await log.find_bot_message(msg.where.platform, msg.where.thread_id)
    if target is None or target.announcement_id is None:
        return
    await log.record(
        Event(
            platform=msg.where.platform,
            kind="reply",
            channel=msg.where.channel_id,
            user=msg.author.id,
            text=msg.text,
            announcement_id=target.announcement_id,
            message_id=msg.message_id,
            thread_id=msg.where.thread_id,
        )
    )

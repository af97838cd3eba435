"""The end of the chain: decide what an event means, answer, run commands, log engagement.

Every message reaches it the same way, pushed by an adapter or polled (:mod:`bot.mentions`);
what differs per platform is data: its :class:`~bot.timeline.ReplyPolicy` (public timelines
post only answers, may keep declines silent and cap replies per author) and whether its rules
declare threads.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta

from adapters.base import Adapter, OffersChoices
from bot.answering import COMMAND, Answer, Knowledge, moderators_note
from bot.commands import CommandRouter
from bot.deciding import Outcome
from bot.errors import PermanentPlatformError, PlatformError, StoreError, TransientPlatformError
from bot.events import (
    Choice,
    ChoicePicked,
    Conversation,
    Feedback,
    InboundEvent,
    IncomingMessage,
    OutgoingMessage,
    Reaction,
    SentMessage,
    SlashCommand,
    utcnow,
)
from bot.store.claims import Claims
from bot.store.engagement import EngagementLog, Event
from bot.store.models import EngagementEvent, ReviewItem
from bot.store.states import ReplyDelivery
from bot.telemetry import Metrics
from bot.timeline import ReplyPolicy
from bot.understanding import MENTION

log = logging.getLogger(__name__)

SLOW_DOWN = "You're asking faster than I can keep up; please wait a minute and try again."
THANKS_HELPFUL = "Thanks for the feedback!"
THANKS_UNHELPFUL = "Thanks, that helps us improve. A moderator will review this answer."
ESCALATED = "I've asked a moderator to look at your question."
FEEDBACK_NOT_SAVED = (
    "Thanks, but I couldn't save your feedback just now; please try again in a few minutes."
)
CHOICE_GONE = "That suggestion is no longer available; please ask your question again."
CHOICE_TAKEN = "That one is answered above."
CHOICE_NOT_SAVED = "Sorry, I can't answer that just now; please try again in a few minutes."
#: Longest button label, in characters (Discord allows 80).
CHOICE_LABEL_CHARS = 75
#: Command names that are also everyday first words of a question ("help me understand...").
PLAIN_WORDS = frozenset({"help", "why"})
#: Users whose last question /why remembers.
LAST_QUESTIONS = 1000
#: ``bot_state`` key prefix of a picked suggestion: each is answered once.
CHOICE_PREFIX = "choice:"
#: How a platform without a policy of its own is answered: a chat.
CHAT = ReplyPolicy()


def choice_label(question: str) -> str:
    """A suggestion's button label: the entry's question, shortened to fit."""
    text = " ".join(question.split())
    if len(text) <= CHOICE_LABEL_CHARS:
        return text
    return text[: CHOICE_LABEL_CHARS - 1].rstrip() + "…"


def choice_token(ref: str, entry_id: int) -> str:
    """The token on a suggestion's button: the question's ref and the entry."""
    return f"{ref}:{entry_id}"


def parse_choice_token(token: str) -> tuple[str, int] | None:
    """``(ref, entry_id)`` from :func:`choice_token`'s output, or None if it is not one."""
    ref, _, entry = token.rpartition(":")
    if not ref or len(ref) > 64 or not entry.lstrip("-").isdigit() or len(entry) > 12:
        return None
    return ref, int(entry)


class Outbox:
    """Sends through the adapter of each platform; platform errors are logged, not raised."""

    def __init__(self, adapters: Mapping[str, Adapter], metrics: Metrics | None = None) -> None:
        self._adapters = adapters
        self._metrics = metrics

    def has(self, platform: str) -> bool:
        """Whether an adapter for ``platform`` is running."""
        return platform in self._adapters

    def offers_choices(self, platform: str) -> bool:
        """Whether ``platform``'s adapter can show a clarification's suggestions."""
        adapter = self._adapters.get(platform)
        return isinstance(adapter, OffersChoices) and adapter.offers_choices()

    async def send(self, message: OutgoingMessage) -> SentMessage | None:
        """Post ``message``; None if there is no adapter or the platform failed."""
        try:
            return await self.post(message)
        except PlatformError:
            return None

    async def post(self, message: OutgoingMessage) -> SentMessage:
        """Post ``message``; a failure is logged and counted, then raised.

        Raises:
            PlatformError: the platform failed, or no adapter for it runs (permanent).
        """
        platform = message.where.platform
        adapter = self._adapters.get(platform)
        if adapter is None:
            log.warning("no adapter for platform=%s", platform)
            raise PermanentPlatformError(platform, "no adapter running")
        try:
            return await adapter.send(message)
        except PlatformError as exc:
            log.warning("reply failed platform=%s error=%s", exc.platform, exc.reason)
            if self._metrics is not None:
                self._metrics.platform_error(exc.platform, isinstance(exc, TransientPlatformError))
            raise


class Dispatcher:
    """Handles each normalized event; never raises into the adapter."""

    def __init__(
        self,
        *,
        knowledge: Knowledge,
        engagement: EngagementLog,
        router: CommandRouter,
        outbox: Outbox,
        claims: Claims,
        reply_in_thread: bool = True,
        moderator_channels: Mapping[str, str] | None = None,
        metrics: Metrics | None = None,
        replies: Mapping[str, ReplyPolicy] | None = None,
        threadless: frozenset[str] = frozenset(),
    ) -> None:
        """``replies``: each platform's reply policy (the rest are answered as chats);
        ``threadless``: platforms whose rules declare no threads (the terminal), where no bot
        thread is remembered."""
        self._metrics = metrics
        self._knowledge = knowledge
        self._log = engagement
        self._router = router
        self._outbox = outbox
        self._claims = claims
        # The last question per (platform, channel, user), for /why (bounded, oldest out).
        self._last: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._reply_in_thread = reply_in_thread
        self._moderators = dict(moderator_channels or {})
        self._replies = dict(replies or {})
        self._threadless = threadless

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
        """Tell a user they hit the rate limit (called by the chain once per burst), except on
        a public timeline, where everyone would read it."""
        if not self._policy(msg.where.platform).public:
            await self._outbox.send(self._reply(msg, SLOW_DOWN))

    def _policy(self, platform: str) -> ReplyPolicy:
        return self._replies.get(platform, CHAT)

    def _reply(
        self,
        msg: IncomingMessage,
        text: str,
        token: str | None = None,
        choices: tuple[Choice, ...] = (),
    ) -> OutgoingMessage:
        where = msg.where
        under = self._reply_in_thread or where.thread_id or self._policy(where.platform).public
        return OutgoingMessage(
            where=where,
            text=text,
            reply_to=msg.message_id if under else None,
            feedback_token=token,
            handle=msg.handle,
            choices=choices,
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

        The answer comes from memory, so a database outage costs the log entry, not the reply
        (except where the platform's policy caps replies per author: the count is read from
        the log, and without it nothing is posted).

        Raises:
            TransientPlatformError: only for a polled message whose reply certainly did not
                go out and of which nothing was logged: its poller delivers it again later.
        """
        try:
            in_bot_thread, announcement_id = await self._thread_announcement(msg)
        except StoreError as exc:
            log.error("thread lookup failed, treating as a new conversation: %s", exc)
            in_bot_thread, announcement_id = False, None
        if not (msg.mentions_bot or msg.where.is_direct or in_bot_thread):
            await log_announcement_reply(self._log, msg)
            return
        policy = self._policy(msg.where.platform)
        command = self._forgotten_slash(msg.text)
        if command is not None and not policy.public:
            await self._outbox.send(
                self._reply(msg, f"Commands start with a slash: try /{command}")
            )
            return
        if command is not None:
            # A public timeline runs no commands and a hint there is noise: "announce list"
            # is not a question about what happened, so it is logged and left unanswered.
            answer = self._knowledge.not_a_question(msg.text, COMMAND)
        else:
            clarify = self._outbox.offers_choices(msg.where.platform)
            answer = await self._knowledge.respond(msg.text, clarify=clarify)
        self._remember(msg)
        ref = uuid.uuid4().hex
        announcement_id = announcement_id or answer.announcement_id
        text = answer.text
        queued = False
        if answer.needs_review and not policy.public:
            # Queue the question before replying, so the reply can say truthfully whether
            # a moderator will see it. A public timeline's reply says nothing about the queue,
            # and the exchange is logged whole after it (so a polled question whose reply is
            # tried again is logged once).
            queued = await self._queue_for_review(msg, answer, ref, announcement_id)
            first, _, rest = text.partition("\n")
            text = "\n".join(p for p in (first, moderators_note(queued), rest) if p)
        sent: SentMessage | None = None
        delivery = await self._held_back(msg, answer, policy)
        if delivery is None:
            choices = tuple(
                Choice(choice_token(ref, s.entry_id), choice_label(s.question))
                for s in answer.suggestions
            )
            reply = self._reply(msg, text, ref if answer.answered else None, choices)
            sent, delivery = await self._post_reply(reply, retry=msg.polled and not queued)
        if self._metrics is not None:
            self._metrics.question(msg.where.platform, answer.answered)
        thread = None
        threads = (self._reply_in_thread or policy.public) and (
            msg.where.platform not in self._threadless
        )
        if sent is not None and threads and not in_bot_thread:
            thread_id = sent.thread_id or msg.where.thread_id or msg.message_id
            thread = (msg.where.platform, msg.where.channel_id, thread_id)
        await record_exchange(
            self._log,
            msg,
            replace(answer, text=text),
            ref,
            sent,
            announcement_id,
            thread=thread,
            extra={"delivery": delivery} if delivery else None,
            question_logged=queued,
        )

    async def _held_back(
        self, msg: IncomingMessage, answer: Answer, policy: ReplyPolicy
    ) -> ReplyDelivery | None:
        """Why the platform's policy keeps the reply back (a decline it keeps quiet, or the
        author had the hour's replies), or None to post it."""
        if not (answer.answered or policy.decline_reply):
            return ReplyDelivery.SILENT
        cap = policy.replies_per_author_per_hour
        if cap is None:
            return None
        # Engagement rows carry the wall-clock time they were written.
        since = utcnow() - timedelta(hours=1)
        if await self._log.replies_to(msg.where.platform, msg.author.id, since) < cap:
            return None
        log.info(
            "hourly reply cap reached platform=%s author=%s", msg.where.platform, msg.author.id
        )
        return ReplyDelivery.CAPPED

    async def _post_reply(
        self, reply: OutgoingMessage, *, retry: bool
    ) -> tuple[SentMessage | None, ReplyDelivery | None]:
        """``(what was posted, None)``, or ``(None, why it is not up)``.

        Raises:
            TransientPlatformError: with ``retry``, when the reply certainly did not go out.
        """
        try:
            return await self._outbox.post(reply), None
        except TransientPlatformError as exc:
            if retry and not exc.ambiguous:
                raise
            return None, ReplyDelivery.UNKNOWN if exc.ambiguous else ReplyDelivery.FAILED
        except PlatformError:
            return None, ReplyDelivery.FAILED

    def _forgotten_slash(self, text: str) -> str | None:
        """``announce list`` typed without its slash: the command meant, or None."""
        words = MENTION.sub(" ", text).split()
        if not words or len(words) > 12:
            return None
        name = words[0].casefold()
        if name not in self._router.names() or name in PLAIN_WORDS:
            return None
        return " ".join([name, *words[1:]])[:80]

    def _remember(self, msg: IncomingMessage) -> None:
        key = (msg.where.platform, msg.where.channel_id, msg.author.id)
        self._last[key] = msg.text
        self._last.move_to_end(key)
        if len(self._last) > LAST_QUESTIONS:
            self._last.popitem(last=False)

    async def why(self, cmd: SlashCommand) -> str:
        """``/why``: how the caller's last question was read, ranked and decided."""
        text = self._last.get((cmd.where.platform, cmd.where.channel_id, cmd.author.id))
        if text is None:
            return "Ask me something first; then /why tells you how I decided."
        clarify = self._outbox.offers_choices(cmd.where.platform)
        return explain_verdict(text, self._knowledge, clarify=clarify)

    async def _queue_for_review(
        self, msg: IncomingMessage, answer: Answer, ref: str, announcement_id: int | None
    ) -> bool:
        """Log the question with its review item; False if the database did not take it."""
        try:
            await self._log.record(
                question_event(msg, answer, ref, announcement_id), review=review_item(msg, answer)
            )
        except StoreError as exc:
            log.error("declined question not queued for review: %s", exc)
            return False
        return True

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
        """Answer a suggestion picked from a clarification, once per suggestion.

        The pick is claimed in ``bot_state`` together with its ``clarified`` event, so a
        second click, a click after a restart or a click by another user posts nothing
        more. The pick also queues the question for moderators as ``clarified``: one click
        there adds it to the entry as a phrasing, and the bot answers it outright next time.
        """
        parsed = parse_choice_token(picked.token)
        reply = self._knowledge.entry_reply(parsed[1]) if parsed else None
        if parsed is None or reply is None:
            await self._tell(picked, CHOICE_GONE)
            return
        ref, entry_id = parsed
        where = picked.where
        try:
            question = await self._log.question_for(ref)
            first = await self._claims.claim_with_event(
                f"{CHOICE_PREFIX}{ref}:{entry_id}",
                picked.author.id,
                Event(
                    platform=where.platform,
                    kind="clarified",
                    channel=where.channel_id,
                    user=picked.author.id,
                    text=question.text if question else None,
                    faq_entry_id=entry_id if entry_id > 0 else None,
                    ref=ref,
                    detail={"picked": entry_id},
                ),
            )
        except StoreError as exc:
            log.error("picked suggestion not recorded: %s", exc)
            await self._tell(picked, CHOICE_NOT_SAVED)
            return
        if not first:
            await self._tell(picked, CHOICE_TAKEN)
            return
        answer_ref = uuid.uuid4().hex
        reply_to = None
        if question is not None and (self._reply_in_thread or question.thread_id):
            reply_to = question.thread_id or question.message_id
        sent = await self._outbox.send(
            OutgoingMessage(
                where=where,
                text=reply.answer,
                reply_to=reply_to,
                feedback_token=answer_ref,
                handle=picked.handle,
            )
        )
        review = None
        if question is not None and question.text and entry_id > 0:
            review = ReviewItem(
                platform=where.platform,
                question=question.text,
                reason="clarified",
                best_entry_id=entry_id,
                score=question.score,
            )
        try:
            await self._log.record(
                Event(
                    platform=where.platform,
                    kind="answer",
                    channel=where.channel_id,
                    text=reply.answer,
                    faq_entry_id=entry_id if entry_id > 0 else None,
                    message_id=sent.message_id if sent else None,
                    thread_id=sent.thread_id if sent else where.thread_id,
                    url=sent.url if sent else None,
                    ref=answer_ref,
                    detail={"reason": "picked", "question_ref": ref}
                    | ({} if sent else {"delivery": ReplyDelivery.FAILED}),
                ),
                review=review,
            )
        except StoreError as exc:
            log.error("picked answer not logged: %s", exc)

    async def _tell(self, picked: ChoicePicked, text: str) -> None:
        await self._outbox.send(
            OutgoingMessage(
                where=picked.where, text=text, ephemeral_to=picked.author.id, handle=picked.handle
            )
        )

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


REASONS = {
    "confident": "the best entry is very likely right",
    "unsure": "the best entries are likely but none is certain, so I offered them",
    "low_confidence": "no entry is likely enough to answer or to suggest",
    "off_topic": "nothing in the FAQ is about that",
    "no_content": "there was no question in it",
    "empty": "the message was empty",
    "too_long": "the message is too long",
    "instructions": "it tells me what to do or say rather than asking something",
    "about_me": "it asks about me, the bot, not about PyTorch's move",
    "refers_back": "it points back at something I could not answer",
    "command": "it reads as a command typed without its slash",
    "news": "it asks for news, answered from the announcements",
}


def explain_verdict(text: str, knowledge: Knowledge, *, clarify: bool = True) -> str:
    """The ``/why`` report for one message: outcome, reading, top entries, reason."""
    answer = knowledge.answer(text, clarify=clarify)
    verdict = knowledge.explain(text, clarify=clarify)
    shown = text if len(text) <= 80 else text[:79] + "…"
    lines = [f"Your last message: “{shown}”", f"Outcome: {answer.outcome.value}"]
    parts = [p.question for p in verdict.parts]
    if parts != [text]:
        lines.append("Read as: " + " | ".join(f"“{p}”" for p in parts))
    lead = verdict.lead
    cut = knowledge.answer_cut
    lines.append(
        f"Confidence the best entry is right: {lead.decision.confidence:.2f} "
        f"(answers at {cut:.2f} or more)"
    )
    candidates = lead.analysis.candidates[:3]
    if candidates:
        lines.append("Top entries (matcher score):")
        for position, candidate in enumerate(candidates, start=1):
            question = knowledge.question_of(candidate.entry_id) or f"entry {candidate.entry_id}"
            lines.append(f"  {position}. {candidate.score:.2f} {question}")
    reason = REASONS.get(answer.reason, answer.reason)
    lines.append(f"Why: {reason}.")
    return "\n".join(lines)


def question_event(
    msg: IncomingMessage, answer: Answer, ref: str, announcement_id: int | None
) -> Event:
    """The ``question`` engagement event of an exchange."""
    where = msg.where
    return Event(
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


def review_item(msg: IncomingMessage, answer: Answer) -> ReviewItem:
    """The moderators' review item for a declined question."""
    return ReviewItem(
        platform=msg.where.platform,
        question=msg.text,
        reason="low_confidence" if answer.reason == "low_confidence" else "declined",
        best_entry_id=answer.entry_id,
        score=answer.score,
    )


#: The engagement kind of the bot's reply, per outcome.
REPLY_KINDS = {Outcome.ANSWER: "answer", Outcome.CLARIFY: "clarify", Outcome.DECLINE: "declined"}


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
    question_logged: bool = False,
) -> None:
    """Log a question, the bot's answer, clarification or decline, queue it for moderators if
    needed, and remember the bot's thread — one transaction. ``extra`` is merged into the
    reply's detail (e.g. ``{"delivery": ReplyDelivery.SILENT}`` for a decline kept quiet).
    ``question_logged``: the question and its review item were stored already."""
    where = msg.where
    detail: dict[str, object] = {"reason": answer.reason, "outcome": answer.outcome.value}
    if answer.suggestions:
        detail["suggestions"] = [s.entry_id for s in answer.suggestions]
    if len(answer.entry_ids) > 1:
        detail["entries"] = [i for i in answer.entry_ids if i > 0]
    if sent is None:
        detail["delivery"] = ReplyDelivery.FAILED
    detail.update(extra or {})
    reply = Event(
        platform=where.platform,
        kind=REPLY_KINDS[answer.outcome] if answer.reason != "news" else "answer",
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
    if question_logged:
        await engagement.record(reply, thread=thread)
        return
    review = review_item(msg, answer) if answer.needs_review else None
    await engagement.record(
        question_event(msg, answer, ref, announcement_id), reply, review=review, thread=thread
    )


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

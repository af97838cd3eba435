"""The per-part progress of a delivery, as kept in ``Delivery.progress`` (a JSON list).

Each posted part is one entry ``channel|message_id``, in posting order, so a retry continues
after the last one (an X thread at part 3 replies to part 2) and a retraction deletes them all.

The last entry may instead be a part *in doubt*: ``?channel|since|last``, ISO times of the
first and the latest attempt that may have posted it. It is written **before** every platform
call, in the same row, and replaced by the posted entry once the call answers; so a row found
in the middle of an attempt (its process died) tells whether a call may have happened:

- no marker: nothing was in flight, the row can simply be posted again;
- a marker: the post may be up, so it is looked up on the platform first (``since`` is where
  the lookup starts) and posted only if it is not there.

The marker stays until the part is found or posted; ``mark-sent`` drops it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.events import utcnow

#: Prefix of the entry of a part in doubt.
DOUBT = "?"


def posted_entry(channel: str, message_id: str) -> str:
    """One posted part: ``channel|message_id``."""
    return f"{channel}|{message_id}"


def split_entry(entry: str) -> tuple[str, str]:
    """(channel, message_id) of a posted entry."""
    channel, _, message_id = entry.rpartition("|")
    return channel, message_id


def posted_entries(progress: Sequence[str]) -> list[str]:
    """The posted parts of a ``progress`` list, without a part in doubt."""
    return [entry for entry in progress if not entry.startswith(DOUBT)]


def posted_ids(progress: Sequence[str]) -> list[str]:
    """The platform ids of the posted parts, in posting order."""
    return [split_entry(entry)[1] for entry in posted_entries(progress)]


@dataclass(frozen=True, slots=True)
class Doubt:
    """A part whose post may or may not be up."""

    #: Where it was posted ("" when not known: a row from before markers were written).
    channel: str
    #: When the first attempt that may have posted it started: the lookup starts there.
    since: datetime
    #: When the latest such attempt was last known to be under way: when it started (the
    #: marker written before the call), then when the client gave up on it. The lookup waits
    #: ``reconcile_after`` after it, for a post the platform was still making to show.
    last: datetime

    def entry(self) -> str:
        """The ``progress`` marker."""
        return f"{DOUBT}{self.channel}|{self.since.isoformat()}|{self.last.isoformat()}"

    def again(self, at: datetime) -> Doubt:
        """The same part, attempted once more at ``at`` (the lookup still starts at ``since``)."""
        return Doubt(self.channel, self.since, at)


def in_doubt(progress: Sequence[str]) -> Doubt | None:
    """The part in doubt, if the last ``progress`` entry is one."""
    if not progress or not progress[-1].startswith(DOUBT):
        return None
    channel, _, times = progress[-1].removeprefix(DOUBT).partition("|")
    since, _, last = times.partition("|")
    try:
        first = datetime.fromisoformat(since)
        return Doubt(channel, first, datetime.fromisoformat(last) if last else first)
    except ValueError:
        now = utcnow()  # unreadable: look from a while back, and wait the full delay
        return Doubt(channel, now - timedelta(days=1), now)


def with_doubt(progress: Sequence[str], doubt: Doubt) -> list[str]:
    """``progress`` with ``doubt`` as its part in doubt (replacing any earlier marker)."""
    return [*posted_entries(progress), doubt.entry()]

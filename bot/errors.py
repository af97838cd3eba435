"""The project's exception tree.

Every error the bot raises on purpose derives from :class:`FoundationBotError`. Platform SDK
errors are translated into :class:`TransientPlatformError` or :class:`PermanentPlatformError`
at the adapter boundary (``raise ... from exc``), so the core never inspects SDK exceptions.
"""

from __future__ import annotations

#: The one line a user sees when handling their command failed inside the bot (the details
#: go to the log). The command router and the adapters' own last-resort handlers both use it.
COMMAND_FAILED = "Sorry, something went wrong on my side running that command; it has been logged."


class FoundationBotError(Exception):
    """Root of every error foundation-bot raises on purpose."""


class ConfigError(FoundationBotError):
    """The configuration is invalid. ``problems`` lists every problem found, each one line
    naming its key; the message is that line, or a count followed by one line each."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]


class StartError(FoundationBotError):
    """Something the configured bot needs at start is not available (its web server's port);
    the message is one line saying what to change."""


class StoreError(FoundationBotError):
    """The database is unreachable or in an unexpected state."""


class FaqImportError(FoundationBotError):
    """An FAQ file failed validation; ``problems`` lists every error with its entry number."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class CommandError(FoundationBotError):
    """A chat command was malformed; the message is shown to the user as is, with usage."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


class PlatformError(FoundationBotError):
    """A platform refused or failed a request."""

    def __init__(
        self,
        platform: str,
        message: str,
        *,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(f"{platform}: {message}")
        self.platform = platform
        self.reason = message
        #: Seconds the platform asked us to wait (429 Retry-After / X's reset header).
        self.retry_after = retry_after
        #: The request may have taken effect (e.g. a timeout after it was sent): retrying
        #: blindly could post twice, so a delivery first looks the post up on the platform
        #: (adapters that can, see ``adapters.base.Reconciler``) or goes to ``unknown``.
        self.ambiguous = ambiguous


class TransientPlatformError(PlatformError):
    """Worth retrying later: rate limits, 5xx, timeouts, connection errors."""


class PermanentPlatformError(PlatformError):
    """Retrying cannot help: bad credentials, missing permission, content rejected."""


class DuplicatePostError(PermanentPlatformError):
    """The platform refused a post because the account already posted the same text (X).

    Permanent for a new post; after an attempt that timed out it means that attempt most
    likely went out, so the delivery engine looks the post up instead of failing.
    """

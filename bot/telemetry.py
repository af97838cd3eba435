"""Prometheus metrics for ``/metrics``.

Each :class:`Metrics` owns its own :class:`~prometheus_client.CollectorRegistry` (never the
global one), so several runtimes in one process (tests) keep separate counts. The hooks are
small and called where things happen: the dispatcher counts questions, the delivery engine
counts delivery outcomes and lateness, and both count platform errors.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.store.states import DeliveryState

#: Lateness buckets in seconds: the target is well under a second; minutes mean trouble.
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The bot's counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.questions = Counter(
            "foundation_bot_questions",
            "Questions the bot handled, by platform and outcome (answered or declined).",
            ["platform", "outcome"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "foundation_bot_deliveries",
            "Announcement delivery outcomes by platform and state (sent, failed, unknown, "
            "retrying).",
            ["platform", "state"],
            registry=self.registry,
        )
        self.platform_errors = Counter(
            "foundation_bot_platform_errors",
            "Errors returned by platform APIs, by platform and kind (transient or permanent).",
            ["platform", "kind"],
            registry=self.registry,
        )
        self.lateness = Histogram(
            "foundation_bot_delivery_lateness_seconds",
            "Time from an announcement's due time until it was posted, by platform.",
            ["platform"],
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )

    def question(self, platform: str, answered: bool) -> None:
        """Count one question and whether it was answered."""
        self.questions.labels(platform, "answered" if answered else "declined").inc()

    def delivery(self, platform: str, state: str) -> None:
        """Count one delivery reaching ``state``."""
        self.deliveries.labels(platform, state).inc()

    def sent_late(self, platform: str, due: datetime | None, sent: datetime) -> None:
        """Count a sent delivery and observe how late it went out."""
        self.delivery(platform, DeliveryState.SENT)
        if due is not None:
            self.lateness.labels(platform).observe(max(0.0, (sent - due).total_seconds()))

    def platform_error(self, platform: str, transient: bool) -> None:
        """Count one error a platform API returned."""
        self.platform_errors.labels(platform, "transient" if transient else "permanent").inc()

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)

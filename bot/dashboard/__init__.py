"""The moderator dashboard: engagement log, announcements, review queue, FAQ editor and audit
log, served by the bot's own web server under ``/dashboard/``."""

from bot.dashboard.app import DashboardDeps, build_dashboard

__all__ = ["DashboardDeps", "build_dashboard"]

"""Announcements: scheduling, per-platform rendering and delivery (see the announcements issue)."""

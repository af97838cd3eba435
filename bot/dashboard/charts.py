"""Charts as server-rendered SVG: no JavaScript, nothing loaded from the internet.

The functions here only compute geometry (pure and testable); ``templates/_macros.html``
turns a :class:`Chart` into ``<svg>`` through Jinja2's autoescaping, so a label holding user
text can never become markup. Colours come from CSS classes (``s0`` … ``s5``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

WIDTH = 720
HEIGHT = 260
MARGIN_LEFT = 44
MARGIN_RIGHT = 16
MARGIN_TOP = 16
MARGIN_BOTTOM = 40
SERIES_CLASSES = ("s0", "s1", "s2", "s3", "s4", "s5")


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"
    css: str = "axis"


@dataclass(frozen=True, slots=True)
class Line:
    points: str
    css: str
    title: str


@dataclass(slots=True)
class Chart:
    """Everything the SVG template needs."""

    title: str
    width: int = WIDTH
    height: int = HEIGHT
    rects: list[Rect] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    gridlines: list[float] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    empty: bool = False


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` whose quarters are round too."""
    quarter = max(value, 1.0) / 4
    step = 1.0
    while step * 10 < quarter:
        step *= 10
    for factor in (1, 2, 3, 5, 10):
        if step * factor >= quarter:
            return step * factor * 4
    return step * 40


def _duration(hours: float, span: float) -> str:
    if span <= 3:
        return f"{hours * 60:.0f} min"
    if span <= 72:
        return f"{hours:.1f}".removesuffix(".0") + " h"
    return f"{hours / 24:.1f}".removesuffix(".0") + " d"


def _y_axis(chart: Chart, top: float, plot_h: float) -> None:
    for i in range(5):
        value = top * i / 4
        y = MARGIN_TOP + plot_h - plot_h * i / 4
        chart.gridlines.append(y)
        chart.labels.append(Label(MARGIN_LEFT - 6, y + 4, f"{value:g}", "end"))


def questions_per_day(days: Sequence[tuple[date, int, int]]) -> Chart:
    """Stacked bars per day: answered (bottom) and declined (top)."""
    chart = Chart(title="Questions per day, answered and declined")
    chart.legend = [("s0", "answered"), ("s1", "declined")]
    totals = [a + d for _, a, d in days]
    if not days or max(totals) == 0:
        chart.empty = True
    top = _nice_max(max(totals, default=0))
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    _y_axis(chart, top, plot_h)
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.7, 1.0)
    every = max(1, len(days) // 10)
    for i, (day, answered, declined) in enumerate(days):
        x = MARGIN_LEFT + i * slot + (slot - bar) / 2
        base = MARGIN_TOP + plot_h
        h_answered = plot_h * answered / top
        h_declined = plot_h * declined / top
        label = day.isoformat()
        if answered:
            chart.rects.append(
                Rect(x, base - h_answered, bar, h_answered, "s0", f"{label}: {answered} answered")
            )
        if declined:
            chart.rects.append(
                Rect(
                    x,
                    base - h_answered - h_declined,
                    bar,
                    h_declined,
                    "s1",
                    f"{label}: {declined} declined",
                )
            )
        if i % every == 0:
            chart.labels.append(
                Label(x + bar / 2, HEIGHT - MARGIN_BOTTOM + 16, day.strftime("%m-%d"))
            )
    return chart


def top_entries(entries: Sequence[tuple[str, int]]) -> Chart:
    """Horizontal bars: how often each FAQ entry was the answer."""
    row = 24
    left = 300
    height = MARGIN_TOP + row * max(len(entries), 1) + 8
    chart = Chart(title="Most used FAQ entries", height=height)
    if not entries:
        chart.empty = True
        return chart
    top = max(n for _, n in entries)
    plot_w = WIDTH - left - MARGIN_RIGHT - 40
    for i, (question, count) in enumerate(entries):
        y = MARGIN_TOP + i * row
        width = max(plot_w * count / top, 1.0)
        short = question if len(question) <= 48 else question[:47] + "…"
        chart.labels.append(Label(left - 8, y + 15, short, "end", "entry"))
        chart.rects.append(Rect(left, y + 3, width, row - 8, "s0", f"{question}: {count}"))
        chart.labels.append(Label(left + width + 6, y + 15, str(count), "start", "value"))
    return chart


def engagement_curves(
    series: Mapping[str, Sequence[datetime]], start: datetime | None, end: datetime
) -> Chart:
    """Cumulative engagement over time, one line per platform, hours since ``start``."""
    chart = Chart(title="Engagement over time, per platform")
    platforms = sorted(series)
    chart.legend = [(SERIES_CLASSES[i % len(SERIES_CLASSES)], p) for i, p in enumerate(platforms)]
    times = [t for ts in series.values() for t in ts]
    if not times:
        chart.empty = True
        return chart
    origin = start or min(times)
    span_h = max((max(max(times), end) - origin).total_seconds() / 3600, 1.0)
    top = _nice_max(max(len(ts) for ts in series.values()))
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    _y_axis(chart, top, plot_h)
    for i in range(5):
        hours = span_h * i / 4
        x = MARGIN_LEFT + plot_w * i / 4
        chart.labels.append(Label(x, HEIGHT - MARGIN_BOTTOM + 16, _duration(hours, span_h)))

    def point(hours: float, count: int) -> str:
        x = MARGIN_LEFT + plot_w * min(max(hours, 0.0), span_h) / span_h
        y = MARGIN_TOP + plot_h - plot_h * count / top
        return f"{x:.1f},{y:.1f}"

    for i, platform in enumerate(platforms):
        stamps = sorted(series[platform])
        points = [point(0.0, 0)]
        for n, at in enumerate(stamps, start=1):
            hours = (at - origin).total_seconds() / 3600
            points.append(point(hours, n - 1))
            points.append(point(hours, n))
        points.append(point(span_h, len(stamps)))
        css = SERIES_CLASSES[i % len(SERIES_CLASSES)]
        chart.lines.append(Line(" ".join(points), css, f"{platform}: {len(stamps)} engagements"))
    return chart


def metric_curves(
    series: Mapping[str, Sequence[tuple[datetime, float]]], start: datetime | None, end: datetime
) -> Chart:
    """Snapshot values over time (e.g. X likes, reposts), one line per metric."""
    chart = Chart(title="Platform metrics over time (snapshots)")
    names = [n for n in sorted(series) if series[n]]
    chart.legend = [(SERIES_CLASSES[i % len(SERIES_CLASSES)], n) for i, n in enumerate(names)]
    times = [t for n in names for t, _ in series[n]]
    if not times:
        chart.empty = True
        return chart
    origin = start or min(times)
    span_h = max((max(max(times), end) - origin).total_seconds() / 3600, 1.0)
    top = _nice_max(max(v for n in names for _, v in series[n]) or 1)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    _y_axis(chart, top, plot_h)
    for i in range(5):
        hours = span_h * i / 4
        x = MARGIN_LEFT + plot_w * i / 4
        chart.labels.append(Label(x, HEIGHT - MARGIN_BOTTOM + 16, _duration(hours, span_h)))
    for i, name in enumerate(names):
        points = []
        for at, value in sorted(series[name]):
            hours = (at - origin).total_seconds() / 3600
            x = MARGIN_LEFT + plot_w * min(max(hours, 0.0), span_h) / span_h
            y = MARGIN_TOP + plot_h - plot_h * value / top
            points.append(f"{x:.1f},{y:.1f}")
        latest = sorted(series[name])[-1][1]
        css = SERIES_CLASSES[i % len(SERIES_CLASSES)]
        chart.lines.append(Line(" ".join(points), css, f"{name}: {latest:g}"))
    return chart

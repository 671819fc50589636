"""Charts as SVG pictures, drawn here so that the console needs no script library: a line
chart (an experiment's conversion over time) and a bar chart (figures side by side). Each
has a title and a text description for screen readers; colours are told apart by pattern
too (dashes), not by hue alone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40
# Dark enough on white for text and lines (contrast above 4.5:1 each).
COLOURS = ("#1f5fa8", "#b23c17", "#2e7d32", "#6a1b9a", "#8a5a00", "#00695c")
DASHES = ("", "6 4", "2 3", "10 3 2 3", "1 4", "8 8")


def line_chart(
    title: str, series: Sequence[tuple[str, Sequence[tuple[datetime, float]]]], percent: bool
) -> Markup:
    """One line per series over time; a series of one point is a dot."""
    points = [p for _, line in series for p in line]
    if not points:
        return _empty(title)
    times = [p[0].timestamp() for p in points]
    t0, t1 = min(times), max(times)
    top = max(p[1] for p in points) or 1.0
    top = _nice(top)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: datetime) -> float:
        return LEFT + (plot_w * (t.timestamp() - t0) / (t1 - t0) if t1 > t0 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    parts = _frame(top, percent)
    parts.append(_label(LEFT, HEIGHT - 12, _when(min(p[0] for p in points)), "start"))
    parts.append(_label(WIDTH - RIGHT, HEIGHT - 12, _when(max(p[0] for p in points)), "end"))
    described = []
    for n, (name, line) in enumerate(series):
        colour, dash = COLOURS[n % len(COLOURS)], DASHES[n % len(DASHES)]
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in line)
        if len(line) > 1:
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2.5" '
                f'stroke-dasharray="{dash}" points="{coords}"/>'
            )
        for t, v in line:
            parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}"/>')
        if line:
            described.append(f"{name}: {_value(line[-1][1], percent)} at the end")
        parts.append(_legend(n, name, colour, dash))
    return _svg(title, "; ".join(described), parts)


def bar_chart(title: str, bars: Sequence[tuple[str, float]], percent: bool = False) -> Markup:
    """One bar per (label, value), labelled with its value."""
    if not bars:
        return _empty(title)
    top = _nice(max(v for _, v in bars) or 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(bars)
    parts = _frame(top, percent)
    for n, (label, value) in enumerate(bars):
        h = plot_h * value / top
        left = LEFT + n * slot + slot * 0.15
        parts.append(
            f'<rect x="{left:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{COLOURS[n % len(COLOURS)]}"/>'
        )
        middle = LEFT + n * slot + slot / 2
        parts.append(_label(middle, TOP + plot_h - h - 4, _value(value, percent), "middle"))
        parts.append(_label(middle, HEIGHT - 12, label, "middle"))
    described = "; ".join(f"{label}: {_value(v, percent)}" for label, v in bars)
    return _svg(title, described, parts)


def _frame(top: float, percent: bool) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = []
    for share in (0.0, 0.5, 1.0):
        level = TOP + plot_h * (1 - share)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{level:.1f}" y2="{level:.1f}" '
            'stroke="#c8c8c8"/>'
        )
        parts.append(_label(LEFT - 6, level + 4, _value(top * share, percent), "end"))
    return parts


def _legend(n: int, name: str, colour: str, dash: str) -> str:
    left = LEFT + 10 + 150 * n
    return (
        f'<line x1="{left}" x2="{left + 24}" y1="{TOP + 8}" y2="{TOP + 8}" stroke="{colour}" '
        f'stroke-width="2.5" stroke-dasharray="{dash}"/>'
        + _label(left + 30, TOP + 12, name, "start")
    )


def _label(x: float, y: float, text: str, anchor: str) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="12" '
        f'fill="#222">{escape(text)}</text>'
    )


def _svg(title: str, description: str, parts: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>"
        + "".join(parts)
        + "</svg>"
    )


def _empty(title: str) -> Markup:
    return Markup(f'<p class="empty">{escape(title)}: nothing to draw yet.</p>')


def _nice(top: float) -> float:
    """A round axis top at or above `top`: 1, 2 or 5 times a power of ten."""
    top = max(top, 1e-9)  # the charts draw rates and counts: nothing below zero
    scale = 10.0 ** len(str(int(top))) / 10 if top >= 1 else 1.0
    while scale > top:
        scale /= 10
    for step in (1, 2, 5, 10):
        if step * scale >= top:
            return step * scale
    return top


def _value(value: float, percent: bool) -> str:
    return f"{value:.1%}" if percent else f"{value:.4g}"


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M")

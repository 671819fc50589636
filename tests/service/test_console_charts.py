"""The console's SVG charts: what they draw for the data given."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from service.console.charts import bar_chart, line_chart


def test_a_line_chart_draws_a_line_per_series_scaled_to_its_axis() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    series = [
        ("control", [(start + timedelta(hours=h), 0.1 * h) for h in range(4)]),
        ("treatment", [(start + timedelta(hours=h), 0.05 * h) for h in range(4)]),
    ]
    svg = str(line_chart("Conversion", series, percent=True))
    lines = re.findall(r'<polyline[^>]*points="([^"]+)"', svg)
    assert len(lines) == 2
    first = [tuple(map(float, p.split(","))) for p in lines[0].split()]
    # Time goes right, the rate goes up (y shrinks), and the last point is the axis's top
    # (0.3 rounds up to 0.5: the top is 0.5, so 0.3 sits at 60% of the height).
    assert [x for x, _ in first] == sorted(x for x, _ in first)
    assert [y for _, y in first] == sorted((y for _, y in first), reverse=True)
    assert "50.0%" in svg and "treatment: 15.0% at the end" in svg
    assert 'role="img"' in svg and "<title>Conversion</title>" in svg


def test_a_series_of_one_point_is_a_dot_and_no_data_is_said_in_words() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    svg = str(line_chart("One", [("only", [(at, 0.2)])], percent=True))
    assert "<polyline" not in svg and svg.count("<circle") == 1
    assert "nothing to draw yet" in str(line_chart("None", [], percent=True))


def test_bars_are_as_tall_as_their_values() -> None:
    svg = str(bar_chart("Figures", [("a", 0.4), ("b", 0.1)]))
    heights = [float(h) for h in re.findall(r'<rect[^>]*height="([\d.]+)"', svg)]
    assert len(heights) == 2 and abs(heights[0] / heights[1] - 4) < 0.01
    assert "<script" not in svg
    escaped = str(bar_chart("<b>", [("<i>", 1.0)]))
    assert "<i>" not in escaped and "&lt;i&gt;" in escaped

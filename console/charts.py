"""Server-rendered SVG charts (no JavaScript, nothing from a CDN; allowed by the CSP)."""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT = 720, 240  # SVG user units (the page scales it to its width)
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 14, 46


def _x(index: int, count: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span / 2 if count == 1 else span * index / (count - 1))


def _y(rate: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - rate)


def _grid() -> list[str]:
    out = []
    for pct in (0, 25, 50, 75, 100):
        y = _y(pct / 100)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{pct}%</text>')
    return out


def _labels(labels: list[str]) -> list[str]:
    """At most ~8 x-axis labels, evenly spread (first and last always shown)."""
    count = len(labels)
    step = max(1, -(-count // 8))
    shown = list(range(0, count, step))
    if shown and shown[-1] != count - 1:  # the last label replaces a neighbour too close to it
        shown = shown[:-1] if count - 1 - shown[-1] < step else shown
        shown.append(count - 1)
    anchor = {0: "start", count - 1: "end"} if count > 1 else {}
    return [f'<text x="{_x(i, count):.1f}" y="{HEIGHT - BOTTOM + 16}" '
            f'text-anchor="{anchor.get(i, "middle")}">{escape(labels[i])}</text>' for i in shown]


def trend_svg(points: list[tuple[str, float | None]], flag_below: float, title: str) -> str:
    """A line chart of attendance rates (fractions, None = nothing counted) per session,
    in order, with a dashed line at ``flag_below``; ``title`` is its accessible name."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'class="chart" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    parts += _grid()
    y = _y(flag_below)
    parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" class="limit"/>')
    count = len(points)
    coords = [(_x(i, count), _y(rate), label, rate) for i, (label, rate) in enumerate(points)
              if rate is not None]
    if len(coords) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in coords)
        parts.append(f'<polyline points="{path}" class="line"/>')
    for x, y, label, rate in coords:
        cls = "dot low" if rate < flag_below else "dot"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" class="{cls}">'
                     f'<title>{escape(label)}: {rate * 100:.0f}%</title></circle>')
    if not coords:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
                     'no completed sessions in this range</text>')
    parts += _labels([label for label, _ in points])
    parts.append("</svg>")
    return "".join(parts)

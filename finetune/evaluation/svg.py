"""Inline SVG charts for the HTML report: plain markup, no script, so the page draws offline in any browser.

Every chart is an `<svg class="chart">` with a `<title>` and one drawn mark (`class="mark"`) per data point or bar,
which is what the browser test counts to decide that a chart drew.
"""

from __future__ import annotations

import math
from html import escape

# Colour-blind-safe pair (Okabe-Ito blue and vermillion), then more of the same palette for extra series.
COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9")
FONT = 'font-family="sans-serif" font-size="12"'


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.001:
        return f"{value:.1e}"
    return f"{value:g}"


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" {FONT} font-weight="bold">{escape(title)}</text>'
        + "".join(body)
        + "</svg>"
    )


def _legend(names: list[str], x: float, y: float) -> list[str]:
    out = []
    for i, name in enumerate(names):
        yy = y + 16 * i
        colour = COLOURS[i % len(COLOURS)]
        out.append(f'<rect x="{x:.1f}" y="{yy - 9:.1f}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14:.1f}" y="{yy:.1f}" {FONT}>{escape(name)}</text>')
    return out


def line_chart(
    title: str,
    series: dict[str, list[tuple[float, float]]],
    x_label: str,
    y_label: str,
    marker: tuple[float, float, str] | None = None,
    width: int = 460,
    height: int = 260,
) -> str:
    """One line per series of (x, y) points; `marker` (x, y, text) rings one point, e.g. the best val loss."""
    points = [p for pts in series.values() for p in pts]
    if not points:
        return f'<p class="empty">{escape(title)}: no data.</p>'
    left, right, top, bottom = 58, 110, 28, 40
    pw, ph = width - left - right, height - top - bottom
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xt, yt = _nice_ticks(min(xs), max(xs)), _nice_ticks(min(0.0, min(ys)) if min(ys) >= 0 else min(ys), max(ys))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / ((y1 - y0) or 1) * ph

    body = [f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#bbb"/>']
    for t in yt:
        body.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eee"/>')
        body.append(f'<text x="{left - 4}" y="{sy(t) + 4:.1f}" text-anchor="end" {FONT}>{_label(t)}</text>')
    for t in xt:
        body.append(f'<text x="{sx(t):.1f}" y="{top + ph + 16}" text-anchor="middle" {FONT}>{_label(t)}</text>')
    body.append(f'<text x="{left + pw / 2:.0f}" y="{height - 6}" text-anchor="middle" {FONT}>{escape(x_label)}</text>')
    body.append(
        f'<text transform="translate(14 {top + ph / 2:.0f}) rotate(-90)" text-anchor="middle" {FONT}>'
        f"{escape(y_label)}</text>"
    )
    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        if len(pts) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts:
            body.append(
                f'<circle class="mark" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}">'
                f"<title>{escape(name)}: step {_label(x)}, {_label(y)}</title></circle>"
            )
    if marker is not None:
        mx, my, text = marker
        body.append(f'<circle cx="{sx(mx):.1f}" cy="{sy(my):.1f}" r="7" fill="none" stroke="#000"/>')
        body.append(f'<text x="{sx(mx):.1f}" y="{sy(my) - 10:.1f}" text-anchor="middle" {FONT}>{escape(text)}</text>')
    body += _legend(list(series), left + pw + 10, top + 10)
    return _svg(width, height, title, body)


def bar_chart(
    title: str,
    labels: list[str],
    series: dict[str, list[float]],
    x_label: str,
    x_max: float | None = None,
    width: int = 560,
) -> str:
    """Horizontal bars, one group per label and one bar per series in it, each bar with its value at its end."""
    if not labels:
        return f'<p class="empty">{escape(title)}: no data.</p>'
    n = len(series)
    bar, gap = 12, 10
    left = 12 + 8 * max(len(s) for s in labels)  # ~8 px per character of a 12 px sans-serif label
    right, top = 150, 28
    group = n * bar + gap
    ph = group * len(labels)
    height = top + ph + 40
    pw = width - left - right
    values = [v for vs in series.values() for v in vs]
    ticks = _nice_ticks(0.0, x_max if x_max is not None else max(max(values), 1e-9))
    hi = ticks[-1]

    def sx(v: float) -> float:
        return left + max(v, 0.0) / hi * pw

    body = [f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="#888"/>']
    for t in ticks:
        body.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>')
        body.append(f'<text x="{sx(t):.1f}" y="{top + ph + 16}" text-anchor="middle" {FONT}>{_label(t)}</text>')
    body.append(f'<text x="{left + pw / 2:.0f}" y="{height - 6}" text-anchor="middle" {FONT}>{escape(x_label)}</text>')
    for g, label in enumerate(labels):
        gy = top + g * group + gap / 2
        body.append(
            f'<text x="{left - 6}" y="{gy + n * bar / 2 + 4:.1f}" text-anchor="end" {FONT}>{escape(label)}</text>'
        )
        for i, (name, vs) in enumerate(series.items()):
            y, v = gy + i * bar, vs[g]
            colour = COLOURS[i % len(COLOURS)]
            # A zero still gets a 1-px bar, so a chart of zeros is visibly drawn rather than empty.
            w = max(sx(v) - left, 1.0)
            body.append(
                f'<rect class="mark" x="{left}" y="{y:.1f}" width="{w:.1f}" height="{bar - 2}" fill="{colour}">'
                f"<title>{escape(label)}, {escape(name)}: {v:.3f}</title></rect>"
            )
            shown = f"{v:g}" if float(v).is_integer() else f"{v:.2f}"
            body.append(f'<text x="{left + w + 3:.1f}" y="{y + bar - 3:.1f}" font-size="10">{shown}</text>')
    body += _legend(list(series), left + pw + 36, top + 10)
    return _svg(width, height, title, body)

"""The procurement report's charts as inline SVG, drawn from the report rows.

SVG rather than a JavaScript plotting library: the page opens offline with nothing to load,
prints into the PDF as vectors (selectable text, crisp at any zoom), and a chart is drawn the
moment the HTML is parsed, so the PDF never catches a half-rendered canvas.
"""

from __future__ import annotations

import math
from html import escape

COLOURS = {"compute": "#4C72B0", "edge-capex": "#DD8452", "edge-power": "#55A868", "egress": "#C44E52",
           "transfer": "#DD8452", "wait": "#8172B3", "chosen": "#C44E52", "point": "#4C72B0", "slo": "#333333"}
FONT = 'font-family="Helvetica, Arial, sans-serif" font-size="11"'


def nice_ticks(hi: float, n: int = 5) -> list[float]:
    """Round tick values from 0 to at least `hi`."""
    if hi <= 0:
        return [0.0, 1.0]
    raw = hi / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(math.ceil(hi / step - 1e-9)) + 1)]


def _fmt(v: float, unit: str) -> str:
    if unit == "$":
        return f"${v:,.0f}" if v >= 10 or v == 0 else f"${v:,.2f}"
    return f"{v:,.0f}" if v >= 10 or v == 0 else f"{v:g}"


def _svg(name: str, width: int, height: int, body: list[str], title: str) -> str:
    return (f'<svg class="chart" data-chart="{name}" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" {FONT}>'
            f'<title>{escape(title)}</title>' + "".join(body) + "</svg>")


def _x_axis(x0: float, x1: float, y: float, ticks: list[float], scale, unit: str, label: str) -> list[str]:
    out = [f'<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#999"/>']
    for t in ticks:
        x = scale(t)
        out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#999"/>')
        out.append(f'<text x="{x:.1f}" y="{y + 16}" text-anchor="middle" fill="#444">{escape(_fmt(t, unit))}</text>')
    out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{y + 32}" text-anchor="middle" fill="#222">{escape(label)}</text>')
    return out


def _legend(x: float, y: float, items: list[tuple[str, str]]) -> list[str]:
    out = []
    for name, colour in items:
        out.append(f'<rect x="{x:.1f}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14:.1f}" y="{y}" fill="#222">{escape(name)}</text>')
        x += 24 + 6.5 * len(name)
    return out


def cost_chart(items: list[dict], width: int = 720) -> str:
    """Monthly cost by item: one bar per cost line, coloured by kind."""
    items = [i for i in items if i["monthly_usd"] is not None]
    left, right, bar, gap, top = 280, 80, 16, 8, 26
    height = top + len(items) * (bar + gap) + 44
    hi = max([i["monthly_usd"] for i in items] + [1.0])
    ticks = nice_ticks(hi)
    span = ticks[-1] or 1.0

    def scale(v):
        return left + (width - left - right) * v / span

    kinds = list(dict.fromkeys(i["kind"] for i in items))
    body = _legend(left, 14, [(k, COLOURS.get(k, "#999")) for k in kinds])
    for n, i in enumerate(items):
        y = top + n * (bar + gap)
        label = f"{i['item']} ({i['kind']})"
        label = label if len(label) <= 46 else label[:45] + "…"
        w = max(scale(i["monthly_usd"]) - left, 1.0)
        body.append(f'<text x="{left - 6}" y="{y + bar - 4}" text-anchor="end" fill="#222">{escape(label)}</text>')
        body.append(f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" height="{bar}" '
                    f'fill="{COLOURS.get(i["kind"], "#999")}"><title>{escape(label)}: '
                    f'${i["monthly_usd"]:,.2f}/month</title></rect>')
        body.append(f'<text x="{left + w + 4:.1f}" y="{y + bar - 4}" fill="#222">${i["monthly_usd"]:,.2f}</text>')
    body += _x_axis(left, width - right, top + len(items) * (bar + gap), ticks, scale, "$", "$ per month")
    return _svg("cost-by-item", width, height, body, "Monthly cost by item")


def path_chart(paths: list[dict], slo_ms: float | None, width: int = 720) -> str:
    """Latency per source→sink path as compute + transfer + queueing, against the SLO."""
    left, right, bar, gap, top = 280, 60, 18, 10, 26
    height = top + len(paths) * (bar + gap) + 44
    hi = max([p["latency_ms"] for p in paths] + [slo_ms or 0.0, 1.0])
    ticks = nice_ticks(hi * 1.05)
    span = ticks[-1] or 1.0

    def scale(v):
        return left + (width - left - right) * v / span

    parts = (("compute", "compute_ms"), ("transfer", "transfer_ms"), ("wait", "wait_ms"))
    body = _legend(left, 14, [("compute", COLOURS["compute"]), ("transfer", COLOURS["transfer"]),
                              ("queueing wait", COLOURS["wait"]), ("SLO", COLOURS["slo"])])
    for n, p in enumerate(paths):
        y = top + n * (bar + gap)
        label = p["path"] if len(p["path"]) <= 46 else "…" + p["path"][-45:]
        body.append(f'<text x="{left - 6}" y="{y + bar - 5}" text-anchor="end" fill="#222">{escape(label)}</text>')
        x = left
        for name, key in parts:
            w = scale(max(p[key], 0.0)) - left
            if w <= 0:
                continue
            body.append(f'<rect class="bar" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" '
                        f'fill="{COLOURS[name]}"><title>{name}: {p[key]:.1f} ms</title></rect>')
            x += w
        body.append(f'<text x="{x + 4:.1f}" y="{y + bar - 5}" fill="#222">{p["latency_ms"]:.1f} ms</text>')
    bottom = top + len(paths) * (bar + gap)
    if slo_ms:
        xs = scale(slo_ms)
        body.append(f'<line class="slo" x1="{xs:.1f}" y1="{top - 4}" x2="{xs:.1f}" y2="{bottom}" '
                    f'stroke="{COLOURS["slo"]}" stroke-width="1.5" stroke-dasharray="5,3"/>')
    body += _x_axis(left, width - right, bottom, ticks, scale, "ms", "ms (p95 summed along the path)")
    return _svg("latency-per-path", width, height, body, "Latency per path against the SLO")


def frontier_chart(points: list[dict], slo_ms: float | None, width: int = 720, height: int = 300) -> str:
    """The cost–latency frontier (cheapest plan at each latency), the chosen plan marked."""
    left, right, top, bottom = 70, 30, 24, 46
    xs = [p["latency_ms"] for p in points] + ([slo_ms] if slo_ms else [])
    ys = [p["monthly_usd"] for p in points]
    xt, yt = nice_ticks(max(xs + [1.0]) * 1.05), nice_ticks(max(ys + [1.0]) * 1.05)

    def sx(v):
        return left + (width - left - right) * v / (xt[-1] or 1.0)

    def sy(v):
        return height - bottom - (height - top - bottom) * v / (yt[-1] or 1.0)

    body = _legend(left + 10, 14, [("Pareto point", COLOURS["point"]), ("chosen plan", COLOURS["chosen"]),
                                   ("SLO", COLOURS["slo"])])
    for t in yt:
        body.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{width - right}" y2="{sy(t):.1f}" stroke="#eee"/>')
        body.append(f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" fill="#444">{escape(_fmt(t, "$"))}</text>')
    body.append(f'<text x="14" y="{(top + height - bottom) / 2:.1f}" fill="#222" text-anchor="middle" '
                f'transform="rotate(-90 14 {(top + height - bottom) / 2:.1f})">$ per month</text>')
    body += _x_axis(left, width - right, height - bottom, xt, sx, "ms", "p95 latency, ms")
    ordered = sorted(points, key=lambda p: p["latency_ms"])
    if len(ordered) > 1:  # a step line: the cheapest plan at each latency bound
        d = f"M{sx(ordered[0]['latency_ms']):.1f},{sy(ordered[0]['monthly_usd']):.1f}"
        for p in ordered[1:]:
            d += f" H{sx(p['latency_ms']):.1f} V{sy(p['monthly_usd']):.1f}"
        body.append(f'<path d="{d}" fill="none" stroke="{COLOURS["point"]}" stroke-opacity="0.5"/>')
    if slo_ms:
        body.append(f'<line class="slo" x1="{sx(slo_ms):.1f}" y1="{top}" x2="{sx(slo_ms):.1f}" y2="{height - bottom}" '
                    f'stroke="{COLOURS["slo"]}" stroke-width="1.5" stroke-dasharray="5,3"/>')
    for p in ordered:
        x, y = sx(p["latency_ms"]), sy(p["monthly_usd"])
        tip = escape(f"${p['monthly_usd']:,.2f}/month, {p['latency_ms']:.1f} ms: {p['placement']}")
        if p["chosen"]:
            body.append(f'<path class="point chosen" d="M{x:.1f},{y - 8:.1f} L{x + 8:.1f},{y:.1f} L{x:.1f},{y + 8:.1f} '
                        f'L{x - 8:.1f},{y:.1f} Z" fill="{COLOURS["chosen"]}"><title>chosen plan: {tip}</title></path>')
            body.append(f'<text x="{x + 10:.1f}" y="{y - 8:.1f}" fill="{COLOURS["chosen"]}">chosen plan</text>')
        else:
            body.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{COLOURS["point"]}">'
                        f'<title>{tip}</title></circle>')
    return _svg("frontier", width, height, body, "Cost–latency frontier")

"""The backtest report as one self-contained HTML file (engine.scan.backtest builds the data).

Self-contained means it fetches nothing when opened: the CSS is inline, the chart is an
inline SVG drawn here (stacked bars of alerts per rule per day; no JavaScript, no chart
library, no font or image from anywhere), so it can be mailed, archived as a CI artifact and
opened offline. Rule ids and group keys come from rule files and from event fields, which an
attacker can shape: every piece of text is escaped with `html.escape(quote=True)`, including
inside SVG `<title>` tooltips.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from html import escape
from typing import Any

# Distinguishable colours (Okabe-Ito, then Tableau): rules beyond these repeat them.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#4E79A7", "#F28E2B", "#59A14F", "#E15759", "#B07AA1", "#76B7B2", "#9C755F")
MAX_DAYS = 400  # bars in the chart before quiet days are left out
CHART_W, CHART_H, LEFT, BOTTOM, TOP = 1000, 320, 48, 70, 12
STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1b1f24}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#57606a}table{border-collapse:collapse;margin:4px 0 12px}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,monospace;word-break:break-all}
.swatch{display:inline-block;width:11px;height:11px;margin-right:6px;border-radius:2px}
.legend span.item{margin-right:16px;white-space:nowrap}.expired{color:#cf222e}
svg text{font:11px system-ui,sans-serif;fill:#57606a}
svg{max-width:100%;height:auto}
"""


def render(report: dict[str, Any]) -> str:
    rules: dict[str, dict[str, Any]] = report.get("rules", {})
    alerting = [rule_id for rule_id, row in rules.items() if row.get("alerts")]
    colours = {rule_id: PALETTE[n % len(PALETTE)] for n, rule_id in enumerate(alerting)}
    total = sum(int(row.get("alerts", 0)) for row in rules.values())
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>trailguard backtest report</title>", f"<style>{STYLE}</style></head><body>",
        "<h1>trailguard backtest report</h1>",
        f'<p class="meta">{_e(report.get("from") or "-")} to {_e(report.get("to") or "-")}: '
        f"{int(report.get('events', 0)):,} events, {total:,} alerts from "
        f"{len(alerting)} of {len(rules)} rules</p>",
        "<h2>Alerts per rule per day</h2>", _chart(rules, colours), _legend(colours),
        "<h2>Rules</h2>", _rule_table(rules, colours),
        "<h2>Top groups</h2>", _groups(rules, alerting),
        "<h2>Suppressions</h2>", _suppressions(report.get("suppressions", {})),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _chart(rules: dict[str, dict[str, Any]], colours: dict[str, str]) -> str:
    days = _calendar(sorted({day for rule_id in colours
                             for day in rules[rule_id]["alerts_per_day"]}))
    if not days:
        return '<p class="meta">No alerts.</p>'
    totals = [sum(rules[r]["alerts_per_day"].get(day, 0) for r in colours) for day in days]
    top = _nice(max(totals))
    plot_w, plot_h = CHART_W - LEFT - 10, CHART_H - BOTTOM - TOP
    step = plot_w / len(days)
    bar = max(1.0, min(48.0, step * 0.7))
    out = [f'<svg width="{CHART_W}" height="{CHART_H}" '
           f'viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="alerts per rule per day">']
    divisions = next(n for n in (5, 4, 2, 1) if top % n == 0)
    for tick in range(divisions + 1):
        value = top * tick / divisions
        y = TOP + plot_h - plot_h * tick / divisions
        out.append(f'<line x1="{LEFT}" x2="{CHART_W - 10}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#d0d7de" stroke-width="1"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
    out.append(f'<text x="{LEFT - 36}" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 {LEFT - 36} {TOP + plot_h / 2:.1f})">alerts</text>')
    label_every = max(1, round(len(days) / 20))
    for n, day in enumerate(days):
        x = LEFT + step * n + (step - bar) / 2
        y = TOP + plot_h
        for rule_id, colour in colours.items():
            count = rules[rule_id]["alerts_per_day"].get(day, 0)
            if not count:
                continue
            height = plot_h * count / top
            y -= height
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                       f'fill="{colour}"><title>{_e(day)} {_e(rule_id)}: {count}</title></rect>')
        if n % label_every == 0:
            cx, cy = x + bar / 2, TOP + plot_h + 12
            out.append(f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="end" '
                       f'transform="rotate(-40 {cx:.1f} {cy:.1f})">{_e(day)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _calendar(days: list[str]) -> list[str]:
    """Every day from the first to the last, so quiet days show as gaps; only the days with
    alerts when that would be more than MAX_DAYS bars."""
    if not days:
        return days
    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    span = (last - first).days + 1
    if span > MAX_DAYS:
        return days
    return [(first + timedelta(days=n)).isoformat() for n in range(span)]


def _nice(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least `value`."""
    scale = 1
    while True:
        for factor in (1, 2, 5):
            if factor * scale >= value:
                return factor * scale
        scale *= 10


def _legend(colours: dict[str, str]) -> str:
    items = "".join(f'<span class="item"><span class="swatch" style="background:{c}"></span>'
                    f"<code>{_e(r)}</code></span>" for r, c in colours.items())
    return f'<p class="legend">{items}</p>' if items else ""


def _rule_table(rules: dict[str, dict[str, Any]], colours: dict[str, str]) -> str:
    rows = []
    for rule_id, row in sorted(rules.items(), key=lambda item: (-item[1]["alerts"], item[0])):
        swatch = (f'<span class="swatch" style="background:{colours[rule_id]}"></span>'
                  if rule_id in colours else "")
        days = row.get("alerts_per_day", {})
        busiest = max(days.items(), key=lambda item: item[1]) if days else None
        rows.append("<tr>" + f"<td>{swatch}<code>{_e(rule_id)}</code></td>" + "".join(
            f'<td class="n">{int(row.get(key, 0)):,}</td>'
            for key in ("matches", "alerts", "suppressed", "errors"))
            + f"<td>{_e(f'{busiest[0]} ({busiest[1]})') if busiest else '-'}</td></tr>")
    return _table(("rule", "matches", "alerts", "suppressed", "errors", "busiest day"), rows)


def _groups(rules: dict[str, dict[str, Any]], alerting: list[str]) -> str:
    rows = []
    for rule_id in alerting:
        for key, count in rules[rule_id].get("top_groups", []):
            shown = "(no group)" if key is None else key
            rows.append(f"<tr><td><code>{_e(rule_id)}</code></td><td><code>{_e(shown)}</code>"
                        f'</td><td class="n">{int(count):,}</td></tr>')
    return _table(("rule", "group", "alerts"), rows) if rows else '<p class="meta">None.</p>'


def _suppressions(suppressions: dict[str, dict[str, Any]]) -> str:
    rows = []
    for ident, row in suppressions.items():
        expired = ' class="expired"' if row.get("expired") else ""
        rows.append(f"<tr><td><code>{_e(ident)}</code></td>"
                    f'<td class="n">{int(row.get("suppressed", 0)):,}</td>'
                    f"<td{expired}>{_e(row.get('expires', ''))}"
                    f"{' (expired)' if row.get('expired') else ''}</td>"
                    f"<td>{_e(row.get('owner', ''))}</td><td>{_e(row.get('reason', ''))}</td>"
                    "</tr>")
    if not rows:
        return '<p class="meta">None configured.</p>'
    return _table(("suppression", "suppressed", "expires", "owner", "reason"), rows)


def _table(headers: Iterable[str], rows: list[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"

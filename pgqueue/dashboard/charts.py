"""Charts drawn as inline SVG on the server: no script, no CDN, nothing to load.

Over a chosen range (hour, day, week), per queue: jobs finished and failed per
minute and run duration percentiles (p50, p95, p99), from the leader's
roll-ups and the newest history (:func:`.summaries.finished_series`); ready
jobs, depth (live jobs) and lag, from the leader's samples
(:func:`.summaries.depth_series`: the mean count and the largest lag of each
bucket; a bucket without a sample shows 0). Rates stay "per minute" whatever
the bucket: a bucket's count is divided by its minutes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .http import HttpError
from .pages import count_text, esc, link

__all__ = ["RANGES", "Range", "charts_page", "line_chart", "parse_range", "series_by_queue"]


@dataclass(frozen=True)
class Range:
    name: str
    span: timedelta
    bucket_seconds: int


RANGES = {"hour": Range("hour", timedelta(hours=1), 60),
          "day": Range("day", timedelta(days=1), 600),
          "week": Range("week", timedelta(days=7), 3600)}
_WIDTH, _HEIGHT, _PAD = 720, 160, 34
_COLOURS = ("c0", "c1", "c2", "c3", "c4", "c5")


def parse_range(text: str | None) -> Range:
    if text is None:
        return RANGES["hour"]
    if text not in RANGES:
        raise HttpError(400, f"range must be one of {', '.join(RANGES)}; got {text[:20]!r}")
    return RANGES[text]


def series_by_queue(rows: Sequence[Mapping[str, Any]], span: Range, now: datetime,
                    value: str) -> dict[str, list[float]]:
    """One list of points per queue, one point per bucket from the range's start."""
    count = int(span.span.total_seconds() // span.bucket_seconds)
    start = _start(span, now)
    out: dict[str, list[float]] = {}
    for row in rows:
        index = int((row["bucket"] - start).total_seconds() // span.bucket_seconds)
        if 0 <= index < count:
            points = out.setdefault(row["queue"], [0.0] * count)
            points[index] += _value(row, value) / (span.bucket_seconds / 60
                                                   if value in ("succeeded", "failed") else 1)
    return out


def line_chart(series: Mapping[str, Sequence[float]], *, title: str, unit: str,
               chart_id: str) -> str:
    """An SVG line per series, with its peak and a legend; empty when nothing happened."""
    peak = max((max(points) for points in series.values() if points), default=0.0)
    if peak <= 0:
        return (f"<figure class=\"chart\" id=\"{esc(chart_id)}\"><figcaption>{esc(title)}"
                "</figcaption><p class=\"muted\">Nothing in this range.</p></figure>")
    lines, legend = [], []
    for n, (name, points) in enumerate(sorted(series.items())):
        colour = _COLOURS[n % len(_COLOURS)]
        step = (_WIDTH - _PAD) / max(1, len(points) - 1)
        coords = " ".join(f"{_PAD + i * step:.1f},{_HEIGHT - 16 - v / peak * (_HEIGHT - 28):.1f}"
                          for i, v in enumerate(points))
        lines.append(f"<polyline class=\"line {colour}\" points=\"{coords}\">"
                     f"<title>{esc(name)}</title></polyline>")
        legend.append(f"<span class=\"key {colour}\">{esc(name)}</span>")
    axis = (f"<text x=\"2\" y=\"14\" class=\"axis\">{_fmt(peak)}</text>"
            f"<text x=\"2\" y=\"{_HEIGHT - 16}\" class=\"axis\">0</text>"
            f"<line x1=\"{_PAD}\" y1=\"{_HEIGHT - 16}\" x2=\"{_WIDTH}\" y2=\"{_HEIGHT - 16}\" "
            "class=\"base\"/>")
    return (f"<figure class=\"chart\" id=\"{esc(chart_id)}\"><figcaption>{esc(title)} "
            f"<span class=\"muted\">({esc(unit)}, peak {_fmt(peak)})</span></figcaption>"
            f"<svg viewBox=\"0 0 {_WIDTH} {_HEIGHT}\" preserveAspectRatio=\"none\" role=\"img\" "
            f"aria-label=\"{esc(title)}\">{axis}{''.join(lines)}</svg>"
            f"<div class=\"legend\">{''.join(legend)}</div></figure>")


def charts_page(rows: Sequence[Mapping[str, Any]], depth: Sequence[Mapping[str, Any]],
                queues: Sequence[Mapping[str, Any]], span: Range, now: datetime, *,
                base: str = "/charts", note: str = "") -> str:
    picker = "".join(
        f"<a href=\"{esc(link(base, range=name))}\" class=\"{'on' if name == span.name else ''}\""
        f" data-range=\"{name}\">last {name}</a>" for name in RANGES)
    body = [f"<div class=\"ranges\" id=\"ranges\">{picker}</div>",
            line_chart(series_by_queue(rows, span, now, "succeeded"),
                       title="Succeeded per minute", unit="jobs/min", chart_id="chart-succeeded"),
            line_chart(series_by_queue(rows, span, now, "failed"),
                       title="Failed per minute", unit="jobs/min", chart_id="chart-failed")]
    for label, index in (("p50", 0), ("p95", 1), ("p99", 2)):
        body.append(line_chart(series_by_queue(rows, span, now, f"p{index}"),
                               title=f"Run duration {label}", unit="seconds",
                               chart_id=f"chart-{label}"))
    for value, title, unit, chart_id in (
            ("ready", "Ready jobs", "jobs, mean of the samples", "chart-ready"),
            ("depth", "Depth (live jobs)", "jobs, mean of the samples", "chart-depth"),
            ("lag_seconds", "Lag", "seconds, largest sample", "chart-lag")):
        body.append(line_chart(series_by_queue(depth, span, now, value), title=title,
                               unit=unit, chart_id=chart_id))
    now_rows = "".join(
        f"<tr><td>{esc(q['queue'])}</td><td class=\"num\">{esc(count_text(q, 'ready'))}</td>"
        f"<td class=\"num\">{esc(count_text(q, 'scheduled'))}</td>"
        f"<td class=\"num\">{esc(count_text(q, 'running'))}</td>"
        f"<td class=\"num\">{float(q.get('lag_seconds') or 0):.1f} s</td></tr>" for q in queues)
    as_of = f"<p class=\"muted\" id=\"counts-as-of\">{esc(note)}</p>" if note else ""
    body.append("<h2>Depth and lag now</h2><table class=\"grid\" id=\"depth\"><thead><tr>"
                "<th>queue</th><th>ready</th><th>scheduled</th><th>running</th><th>lag</th>"
                f"</tr></thead><tbody>{now_rows}</tbody></table>{as_of}")
    return "<div class=\"charts\">" + "".join(body) + "</div>"


def _start(span: Range, now: datetime) -> datetime:
    epoch = now.timestamp()
    end = epoch - epoch % span.bucket_seconds + span.bucket_seconds
    return datetime.fromtimestamp(end - span.span.total_seconds(), tz=now.tzinfo)


def _value(row: Mapping[str, Any], value: str) -> float:
    if value.startswith("p"):
        percentiles = row.get("duration_percentiles") or []
        index = int(value[1:])
        return float(percentiles[index] or 0) if len(percentiles) > index else 0.0
    return float(row.get(value) or 0)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.2f}"

"""Rendering the site's pages: the Jinja2 templates in `templates/` (every value escaped unless marked safe), the
accuracy curve as an inline SVG, and the colours and number formats the pages share."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

TEMPLATES = Path(__file__).with_name("templates")
# viridis at 0, .25, .5, .75, 1: low accuracy (strong protection) dark, high light, as the heatmap PNG
_STOPS = ((0x44, 0x01, 0x54), (0x3b, 0x52, 0x8b), (0x21, 0x91, 0x8c), (0x5e, 0xc9, 0x62), (0xfd, 0xe7, 0x25))
_SERIES = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True,
                          lstrip_blocks=True, undefined=jinja2.StrictUndefined)
_ENV.filters["dumps"] = lambda value: json.dumps(value, default=str)


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any) -> str:
    """A statistic of unknown scale: 4 significant digits; text as it is; – for none."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def colour(value: float, low: float, high: float) -> tuple[str, str]:
    """Background and text colour of an accuracy on the board's scale."""
    t = min(max((value - low) / (high - low), 0.0), 1.0) * (len(_STOPS) - 1)
    i = min(int(t), len(_STOPS) - 2)
    f = t - i
    rgb = [round(a + (b - a) * f) for a, b in zip(_STOPS[i], _STOPS[i + 1])]
    luminance = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255
    return "#%02x%02x%02x" % tuple(rgb), "#000" if luminance > 0.5 else "#fff"


def render(template: str, **context: Any) -> str:
    """A page (or picture) from its template in report/templates/, every value escaped unless marked safe."""
    return _ENV.get_template(template).render(**context)


def effective(row: dict[str, Any], kind: str) -> Any:
    """The settings a row's method or countermeasure ran with (its identity: the preset's values in place of the
    parameters' placeholders), else its parameters as given (rows from before identities)."""
    identity = row.get("identity")
    settings = identity.get(kind, {}).get("settings") if isinstance(identity, dict) else None
    return settings if isinstance(settings, dict) else row.get(f"{kind}_params")


def curve_svg(series: list[tuple[str, Any]], width: int = 360, height: int = 200) -> Markup:
    """Accuracy (%) over epochs as an inline SVG, one polyline per (name, history of [epoch, acc in 0..1])."""
    points = [(name, [(float(p[0]), 100 * float(p[1])) for p in (history or [])
                      if isinstance(p, (list, tuple)) and len(p) == 2 and finite(p[0]) and finite(p[1])])
              for name, history in series]
    points = [(name, pts) for name, pts in points if pts]
    if not points:
        return Markup("<p class=\"muted\">no accuracy history recorded</p>")
    left, right, top, bottom = 38, 10, 10, 30
    x_max = max(max(x for x, _ in pts) for _, pts in points) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> str:
        return f"{left + plot_w * x / x_max:.1f}"

    def sy(y: float) -> str:
        return f"{top + plot_h * (1 - min(max(y, 0.0), 100.0) / 100):.1f}"

    epochs = sorted({x for _, pts in points for x, _ in pts})
    step = max(1, math.ceil(len(epochs) / 8))
    lines = [{
        "name": name, "colour": _SERIES[k % len(_SERIES)],
        "coords": " ".join(f"{sx(x)},{sy(y)}" for x, y in pts),
        "points": [(sx(x), sy(y), f"epoch {x:g}, {y:.1f} %") for x, y in pts],
        "legend_y": top + 12 + 12 * k if len(points) > 1 else None,
    } for k, (name, pts) in enumerate(points)]
    return Markup(render(
        "curve.svg", width=width, height=height, left=left, right=width - right, top=top, bottom=top + plot_h,
        grid=[(y, sy(y), f"{float(sy(y)) + 3:.1f}") for y in (0, 25, 50, 75, 100)],
        ticks=[(f"{x:g}", sx(x)) for x in epochs[::step]], tick_y=height - bottom + 13,
        middle_x=f"{left + plot_w / 2:.1f}", middle_y=f"{top + plot_h / 2:.1f}", series=lines,
    ).strip())



"""Writing the results: JSON (everything), Markdown (the tables), PNG (throughput over time, Pillow only)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

__all__ = ["write_results", "markdown", "chart"]

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _little(r: dict[str, Any], per_request: int) -> float | None:
    if r.get("in_flight") is not None:
        return r["in_flight"]
    rate, p50 = r["median"].get("sustained_ips"), (r.get("latency_ms") or {}).get("p50")
    return round(rate / per_request * p50 / 1000, 1) if rate and p50 else None


def _upload_rate(s: dict[str, Any]) -> list[str]:
    c = s["ceiling"]
    p = s["params"]
    lines = [
        f"{p['files']:,} photos ({p['tree']['total_mb']:,.0f} MB, median {p['tree']['size_mb']['median']} MB, "
        f"{p['tree']['needs_fix']} need a fix); latency model: {p['latency_text']}; "
        f"ceiling **{c['images_per_s']:g} images/s** ({c['why']}); a full batch takes {c['full_batch_latency_s']} s "
        f"under the model, so {c['in_flight_needed']} requests must be in flight to hold the rate; "
        f"best possible wall time {c['best_wall_s']} s.",
        "",
    ]
    rows = []
    for r in s["rows"]:
        m = r["median"]
        lat = r.get("latency_ms") or {}
        rows.append([r["client"], _f(m.get("sustained_ips")), _f(m.get("e2e_ips")), _pct(r.get("ratio_to_ceiling")),
                     _x(r.get("ratio_to_best_sdk")), _f(m.get("wall_s")), f"{_f(m.get('images'), 0)}",
                     _f(m.get("failed"), 0), _f(m.get("throttled"), 0), _f(m.get("lost"), 0), _f(lat.get("p50"), 0),
                     _f(_little(r, 64)), _f(m.get("cpu_s")), _f(m.get("emulator_cpu_s")), _f(m.get("maxrss_mb"), 0)])
    lines += _table(["client", "images/s sustained", "images/s end-to-end", "of ceiling", "vs best SDK",
                     "wall s", "images in", "refused", "429s", "lost", "p50 latency ms", "in flight", "client CPU s",
                     "emulator CPU s", "peak RSS MB"], rows)
    lines += ["", "_refused_ = images the service answered with an error status (cvbulk fixes WebP, TIFF, CMYK and "
              "too-wide images first; the SDK sends them as they are); _lost_ = images of requests that failed "
              "(a 429 without retry, a connection error)."]
    lines += ["", "_in flight_ = requests/s x median latency (Little's law): what a client kept in flight on average."]
    return lines


def _upload_cpu(s: dict[str, Any]) -> list[str]:
    p = s["params"]
    lines = [f"{p['files']:,} photos ({p['tree']['total_mb']:,.0f} MB), emulator unthrottled, no latency; "
             f"{p.get('method', '')}.", ""]
    rows = []
    for r in s["rows"]:
        m = r["median"]
        rows.append([r["client"], _f(m.get("sustained_ips")), _f(m.get("cpu_ms_per_image"), 2),
                     _f(r.get("fixed_cpu_s"), 2), _f(m.get("emulator_cpu_ms_per_image"), 2),
                     _f(r.get("client_cores_busy"), 2), _f(r.get("emulator_cores_busy"), 2),
                     _f(m.get("maxrss_mb"), 0), r.get("limit", "-")])
    lines += _table(["client", "images/s sustained", "client CPU s / 1,000 images", "fixed CPU s (start-up)",
                     "emulator CPU s / 1,000 images", "client cores busy", "emulator cores busy", "peak RSS MB",
                     "limit"], rows)
    return lines


def _predict_rate(s: dict[str, Any]) -> list[str]:
    c = s["ceiling"]
    p = s["params"]
    lines = [f"{p['files']:,} photos; latency model: {p['latency_text']}; ceiling **{c['images_per_s']:g} images/s** "
             f"({c['why']}; {c['in_flight_needed']} in flight needed at {c['mean_latency_s']} s a call). "
             f"{p['model']}.", ""]
    rows = []
    for r in s["rows"]:
        m = r["median"]
        lat = r.get("latency_ms") or {}
        rows.append([r["client"], _f(m.get("sustained_ips")), _f(m.get("e2e_ips")), _pct(r.get("ratio_to_ceiling")),
                     _x(r.get("ratio_to_best_sdk")), _f(m.get("wall_s")), _f(m.get("images"), 0),
                     _f(m.get("throttled"), 0), _f(m.get("lost"), 0), _f(lat.get("p50"), 0), _f(_little(r, 1)),
                     _f(m.get("cpu_s"))])
    lines += _table(["client", "images/s sustained", "images/s end-to-end", "of ceiling", "vs best SDK", "wall s",
                     "scored", "429s", "not scored", "p50 latency ms", "in flight", "client CPU s"], rows)
    return lines


def _memory(s: dict[str, Any]) -> list[str]:
    lines = [f"Tree: {s['params']['tree']}.", ""]
    rows = [[r["client"], _f(r["median"].get("maxrss_mb"), 0), _f(r["median"].get("wall_s")), _f(r["median"].get("ips"), 0),
             _f(1000 * (r["median"].get("cpu_s") or 0) / max(1, r.get("files") or 1), 2), str(len(r["runs"]))]
            for r in s["rows"]]
    lines += _table(["run", "peak RSS MB", "wall s", "files/s", "client CPU ms / file (start-up included)", "runs"],
                    rows)
    g = s.get("growth") or {}
    sizes = s["params"]["sizes"]
    lines += ["", f"Peak RSS at {sizes[1]:,} files / at {sizes[0]:,} files: dry run {_x(g.get('dry-run'))}, "
              f"upload {_x(g.get('upload'))} (1.0x = flat)."]
    return lines


def _prepare(s: dict[str, Any]) -> list[str]:
    p = s["params"]
    lines = [f"{p['files']} JPEGs of 10,600x700 ({p['tree']['size_mb']['median']} MB each) on {p['cores']} cores; "
             f"work per image: {p['work']}.", ""]
    rows = [[r["client"], _f(r["median"].get("ips"), 2), _f(r["median"].get("wall_s"), 2), _pct(r.get("ratio_to_pool"))]
            for r in s["rows"]]
    lines += _table(["how", "images/s", "wall s", "of the Pool's rate"], rows)
    return lines


_RENDER = {"upload-rate": _upload_rate, "upload-cpu": _upload_cpu, "predict-rate": _predict_rate,
           "memory": _memory, "prepare": _prepare}


def markdown(results: dict[str, Any], *, level: int = 1, image_prefix: str = "") -> str:
    m = results["machine"]
    h = "#" * level
    lines = [
        f"{h} cvbulk benchmark results ({results['mode']})", "",
        f"Machine: {m['cores']} cores ({m.get('cpu')}), {m.get('memory_gb')} GB memory, {m['os']}, {m['python']}; "
        f"aiohttp {m['packages'].get('aiohttp')}, Pillow {m['packages'].get('pillow')}, SDK "
        f"azure-cognitiveservices-vision-customvision {m['packages'].get('azure-cognitiveservices-vision-customvision')}"
        f" (msrest {m['packages'].get('msrest')}). The emulator runs as its own process on the same machine.",
        "", f"Each figure is the median of {results['runs']} run(s). Sustained = images/s between 10 % and 90 % of the "
        "images done (start-up and the last requests' tail left out); end-to-end = images / the client process's "
        "whole wall time (Python start-up, project and tags included).", "",
    ]
    for name, s in results["scenarios"].items():
        lines += [f"{h}# {s['title']}", "", f"_measured {s.get('measured_at')}, load average before: "
                  f"{s.get('load_average_before')}_", ""]
        lines += _RENDER[name](s)
        for note in s.get("notes", []):
            lines += ["", note]
        if s.get("chart"):
            lines += ["", f"![throughput over time]({image_prefix}{s['chart']})"]
        lines.append("")
    return "\n".join(lines)


def _rates(series: list[list[float]] | list[tuple[float, int]], window: float = 2.0) -> list[tuple[float, float]]:
    """Images/s over a sliding window from (t, cumulative count) samples."""
    pts = [(float(t), float(n)) for t, n in series]
    out = []
    j = 0
    for i, (t, n) in enumerate(pts):
        while pts[j][0] < t - window:
            j += 1
        t0, n0 = pts[j]
        if t > t0:
            out.append((t, (n - n0) / (t - t0)))
    return out


def _nice_step(top: float) -> float:
    raw = top / 5
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def chart(title: str, rows: list[dict[str, Any]], ceiling: float | None, path: Path) -> None:
    """Images/s over time (3 s sliding window), one line per client, the ceiling dashed."""
    W, H, L, R, T, B = 1200, 600, 70, 400, 60, 50
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=16)
        small = ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1
        font = small = ImageFont.load_default()
    lines = [(r["client"], _rates(r.get("series") or [], 3.0)) for r in rows if r.get("series")]
    tmax = max([p[0] for _, pts in lines for p in pts] + [1.0])
    top = max([p[1] for _, pts in lines for p in pts] + [ceiling or 0, 1.0]) * 1.08
    step = _nice_step(top)
    ymax = step * math.ceil(top / step)
    tstep = _nice_step(tmax)
    pw, ph = W - L - R, H - T - B

    def xy(t: float, y: float) -> tuple[float, float]:
        return L + pw * t / tmax, T + ph * (1 - y / ymax)

    d.text((L, 18), title, fill="black", font=font)
    d.rectangle([L, T, L + pw, T + ph], outline=(120, 120, 120))
    y = 0.0
    while y <= ymax + 1e-9:
        _, py = xy(0, y)
        d.line([L, py, L + pw, py], fill=(232, 232, 232))
        d.text((8, py - 8), f"{y:,.0f}", fill="black", font=small)
        y += step
    t = 0.0
    while t <= tmax + 1e-9:
        px, _ = xy(t, 0)
        d.text((px - 10, T + ph + 8), f"{t:.0f} s", fill="black", font=small)
        t += tstep
    d.text((8, T - 20), "images/s", fill="black", font=small)
    if ceiling:
        _, py = xy(0, ceiling)
        for x in range(L, L + pw, 12):
            d.line([x, py, min(x + 6, L + pw), py], fill=(0, 0, 0), width=1)
        d.text((L + 6, py - 18), f"ceiling {ceiling:g} images/s", fill="black", font=small)
    for i, (label, pts) in enumerate(lines):
        colour = _COLOURS[i % len(_COLOURS)]
        if len(pts) > 1:
            d.line([xy(t, y) for t, y in pts], fill=colour, width=2)
        ly = T + 10 + 24 * i
        d.line([L + pw + 14, ly + 8, L + pw + 36, ly + 8], fill=colour, width=3)
        d.text((L + pw + 42, ly), label[:52], fill="black", font=small)
    d.text((L + pw + 14, T + 10 + 24 * len(lines) + 10), "3 s sliding window, sampled every 0.5 s", fill=(90, 90, 90),
           font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "PNG", optimize=True)


def write_results(results: dict[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    for name, s in results["scenarios"].items():
        ceiling = (s.get("ceiling") or {}).get("images_per_s")
        charted = [r for r in s.get("rows", []) if r.get("series") and "thumbnails" not in r["client"]]
        if name not in ("upload-rate", "predict-rate"):
            charted = []
        if charted:
            png = f"throughput-{name}.png"
            chart(s["title"], charted, ceiling, out / png)
            s["chart"] = png
    paths = {"json": out / "results.json", "markdown": out / "results.md"}
    tmp = paths["json"].with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    os.replace(tmp, paths["json"])
    paths["markdown"].write_text(markdown(results))
    return paths


README_START = "<!-- results:start (written by python -m benchmarks; do not edit by hand) -->"
README_END = "<!-- results:end -->"


def update_readme(results: dict[str, Any], readme: Path, image_prefix: str = "results/") -> bool:
    """Put the latest full results between the markers of benchmarks/README.md."""
    if not readme.exists():
        return False
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    body = markdown(results, level=3, image_prefix=image_prefix)
    readme.write_text(f"{head}{README_START}\n{body}\n{README_END}{tail}")
    return True

#!/usr/bin/env python3
"""Collects bench/run.sh results and renders docs/benchmarks.md and its SVG chart.

    report.py collect --runs runs.jsonl --out bench/results/DATE.json [...]
    report.py render bench/results/DATE.json --md docs/benchmarks.md --svg docs/img/bench-p99.svg

Standard library only. `render` can be re-run on any results file; the page it writes is
generated, so edit this script (or bench/analysis.md, included verbatim) instead of the page.
"""

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCENARIOS = {
    "v1000": ("1000 viewers, base64", 1000),
    "v2000": ("2000 viewers, base64", 2000),
    "v5000": ("5000 viewers, base64", 5000),
    "binary2000": ("2000 viewers, binary", 2000),
    "tls2000": ("2000 viewers, base64, over TLS (wss://, --tls-self-signed)", 2000),
    "cluster": ("2000 viewers, base64, cluster (streamer on a, viewers on b and c)", 2000),
    "stalled": ("1000 viewers + 200 never reading", 1000),
    "slow": ("1000 viewers + 200 reading a quarter of the frames", 1000),
    "hostile": ("10 viewers + 200 never reading, 1 MB binary frames at 10 fps", 10),
    "burst": ("1000 viewers connecting at once", 1000),
    "idle": ("idle viewers joined, no frames", None),
}
ORDER = list(SCENARIOS)
# The Socket.IO path first: it is the one the design note's pages and any socket.io client use.
SERVERS = ["streamhub-sio", "streamhub", "node", "floor"]
# The pinned sweep's audiences (scenario "pinned<N>").
PINNED = [1000, 2000, 3000, 4000, 5000, 6000]
PINNED_P99_MS = 100
SERVER_NAMES = {
    "streamhub": "StreamHub",
    "streamhub-sio": "StreamHub, Socket.IO path",
    "node": "Node.js baseline",
    "floor": "floor (raw TCP)",
}
COLORS = {"streamhub": "#d9480f", "streamhub-sio": "#f08c00", "node": "#1971c2", "floor": "#495057"}
# Servers with viewers (the floor has none to evict, connect or keep idle).
VIEWER_SERVERS = ["streamhub-sio", "streamhub", "node"]


# --------------------------------------------------------------------------------------------
# collect


def sh(*cmd):
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=10, cwd=ROOT
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
    except OSError:
        pass
    socketio = ""
    try:
        with open(os.path.join(ROOT, "bench/node-baseline/node_modules/socket.io/package.json")) as f:
            socketio = json.load(f).get("version", "")
    except (OSError, ValueError):
        pass
    socketioxide = ""
    try:
        with open(os.path.join(ROOT, "Cargo.lock")) as f:
            m = re.search(r'name = "socketioxide"\nversion = "([^"]+)"', f.read())
            socketioxide = m.group(1) if m else ""
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "os": platform.platform(),
        "mem_total_mb": mem_kb // 1024 if mem_kb else None,
        "rustc": sh("rustc", "--version"),
        "node": sh("node", "--version"),
        "socket.io": socketio,
        "socketioxide": socketioxide,
    }


def server_under_test():
    """What StreamHub binary the numbers belong to."""
    path = os.path.join(ROOT, "target", "release", "streamhub")
    info = {
        "last_commit_touching_server": sh(
            "git", "log", "-1", "--format=%h %cI", "--", "crates/streamhub", "crates/streamhub-protocol"
        ),
        "server_sources_dirty": bool(
            sh("git", "status", "--porcelain", "--", "crates/streamhub", "crates/streamhub-protocol")
        ),
    }
    try:
        st = os.stat(path)
        info["binary_built"] = datetime.fromtimestamp(st.st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OSError:
        pass
    return info


def slim(run):
    """A repeated (noisy) run keeps its summary, not its timelines."""
    run = json.loads(json.dumps(run))
    rep = run.get("report") or {}
    rep.pop("latency_timeline", None)
    (rep.get("server") or {}).pop("rss_timeline", None)
    if rep.get("stalled"):
        ev = rep["stalled"].pop("evicted_at_s", None) or []
        rep["stalled"]["evicted_at_s_min_max"] = [min(ev), max(ev)] if ev else []
    return run


def dump(doc, path):
    """Pretty at the top, one line per run: readable and diffable without being huge."""
    lines = ["{"]
    keys = list(doc)
    for i, k in enumerate(keys):
        comma = "," if i < len(keys) - 1 else ""
        v = doc[k]
        if k in ("runs", "noisy_runs") and isinstance(v, list):
            if not v:
                lines.append(f' "{k}": []{comma}')
                continue
            lines.append(f' "{k}": [')
            for j, r in enumerate(v):
                lines.append("  " + json.dumps(r, ensure_ascii=False, separators=(",", ":"))
                             + ("," if j < len(v) - 1 else ""))
            lines.append(f" ]{comma}")
        else:
            lines.append(f' "{k}": ' + json.dumps(v, ensure_ascii=False) + comma)
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def collect(a):
    runs = []
    with open(a.runs) as f:
        for line in f:
            line = line.strip()
            if line:
                runs.append(json.loads(line))
    noisy = []
    if a.noisy and os.path.exists(a.noisy):
        with open(a.noisy) as f:
            noisy = [json.loads(l) for l in f if l.strip()]
    commands = []
    if a.commands and os.path.exists(a.commands):
        with open(a.commands) as f:
            commands = [l.rstrip("\n") for l in f if l.strip()]
    merged_from = None
    updates = []
    if a.base and os.path.exists(a.base):
        # --update: keep the base file's points that were not run again now.
        with open(a.base) as f:
            base = json.load(f)
        # A point run again replaces the old one only if other work disturbed it less (both
        # are kept: the loser goes to noisy_runs).
        fresh = {(r.get("scenario"), r.get("server")): r for r in runs}
        kept = []
        for r in base.get("runs", []):
            old = dict(r, from_run=r.get("from_run") or base.get("started"))
            new = fresh.get((r.get("scenario"), r.get("server")))
            if new is None:
                kept.append(old)
            elif (old.get("other_cores") or 0) < (new.get("other_cores") or 0) and "error" not in old:
                kept.append(old)
                runs.remove(new)
                noisy.append(dict(new, noisy=True))
            else:
                noisy.append(dict(old, noisy=True))
        runs = kept + runs
        noisy = base.get("noisy_runs", []) + noisy
        commands = base.get("commands", []) + commands
        # Provenance: the first full run, then every update in order.
        merged_from = base.get("original_run") or {
            "started": base.get("started"),
            "finished": base.get("finished"),
            "invocation": base.get("invocation"),
            "load_before": base.get("load_before"),
            "git": base.get("git"),
            "server_under_test": base.get("server_under_test"),
        }
        updates = list(base.get("updates") or [])
    order = {k: i for i, k in enumerate(
        ["v1000", "v2000", "v5000", "binary2000", "tls2000"] + [f"pinned{n}" for n in PINNED]
        + ["cluster", "stalled", "slow", "hostile", "burst", "idle"])}
    srv_order = {srv: i for i, srv in enumerate(SERVERS)}
    runs.sort(key=lambda r: (order.get(r.get("scenario"), 99), srv_order.get(r.get("server"), 9)))
    with open("/proc/loadavg") as f:
        load_after = " ".join(f.read().split()[:3])
    dirty = sh("git", "status", "--porcelain")
    doc = {
        "started": a.started,
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "invocation": a.invocation.strip(),
        "quick": a.quick == "1",
        "git": {"commit": sh("git", "rev-parse", "--short", "HEAD"), "dirty": bool(dirty)},
        "server_under_test": server_under_test(),
        "machine": machine(),
        "load_before": a.load_before,
        "load_after": load_after,
        "commands": commands,
        "runs": runs,
        "noisy_runs": noisy,
    }
    if merged_from:
        doc["original_run"] = merged_from
        updates.append(
            {
                "started": doc["started"],
                "invocation": doc["invocation"],
                "kept": sorted(f"{r['scenario']}/{r['server']}" for r in runs if not r.get("from_run")),
            }
        )
        doc["updates"] = updates
    doc["noisy_runs"] = [slim(r) for r in doc["noisy_runs"]]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    dump(doc, a.out)


# --------------------------------------------------------------------------------------------
# render: numbers


def run_of(doc, scenario, server):
    for r in doc["runs"]:
        if r.get("scenario") == scenario and r.get("server") == server:
            return r
    return None


def metrics(r):
    """Uniform view of one run: bench report or floor output."""
    if r is None:
        return None
    if "error" in r:
        return {"error": r["error"]}
    if "floor" in r:
        fl = r["floor"]
        c, s = fl["client"], fl["server"]
        return {
            "joined": fl["viewers"],
            "of": fl["viewers"],
            "delivered": c["received"] / fl["expected"] if fl["expected"] else None,
            "p50": c.get("p50_ms"),
            "p90": None,
            "p99": c.get("p99_ms"),
            "max": c.get("max_ms"),
            "cpu": s.get("server_cpu_cores"),
            "rss_peak_kb": fl.get("rss_peak_kb") or None,
            "bench_cpu": c.get("client_cpu_cores"),
            "other_cpu": r.get("other_cores"),
            "send_fps": None,
            "notes": [f"server dropped {s.get('dropped', 0)} socket-frames (queue of 8 full)"]
            if s.get("dropped")
            else [],
        }
    rep = r["report"]
    lat = rep.get("latency") or {}
    d = rep.get("delivery") or {}
    srv = rep.get("server") or {}
    con = rep["connect"]
    notes = list(rep.get("notes", []))
    if con.get("failures"):
        notes.append("connect failures: " + ", ".join(f"{k} {v}" for k, v in con["failures"].items()))
    if d.get("viewers_lost"):
        notes.append(
            f"{d['viewers_lost']} viewers lost: "
            + ", ".join(f"{k} {v}" for k, v in d.get("lost_reasons", {}).items())
        )
    fr = rep.get("frames") or {}
    if fr and fr.get("send_fps") and fr["send_fps"] < rep["fps"] * 0.95:
        notes.append(f"streamer sent only {fr['send_fps']:.1f} fps (its sends were held up)")
    if fr and fr.get("streamer_problem"):
        notes.append("streamer: " + fr["streamer_problem"])
    return {
        "joined": con["joined"],
        "of": con["viewers"] + con["stalled"] + con.get("slow", 0),
        "delivered": d.get("fraction"),
        "p50": lat.get("p50_ms"),
        "p90": lat.get("p90_ms"),
        "p99": lat.get("p99_ms"),
        "max": lat.get("max_ms"),
        "cpu": srv.get("cpu_cores"),
        "rss_peak_kb": srv.get("rss_peak_kb"),
        "bench_cpu": (rep.get("bench") or {}).get("cpu_cores"),
        # Work beside the server and the load generator; a cluster run's other nodes and
        # Redis are part of the run, not other work.
        "other_cpu": r.get("other_cores", (rep.get("bench") or {}).get("other_cores")),
        "send_fps": fr.get("send_fps"),
        "phase_ms": con.get("phase_ms"),
        "notes": notes,
        "report": rep,
    }


def fms(v):
    """A latency for a column headed "ms": seconds spelled out past 1000 ms."""
    if v is None:
        return "–"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.1f}"


def fdur(v):
    """A latency with its unit."""
    if v is None:
        return "–"
    return fms(v) if v >= 1000 else fms(v) + " ms"


def fpct(v):
    if v is None:
        return "–"
    if v >= 1.0:
        return "100%"
    p = v * 100
    if p >= 99.9:
        return f"{p:.3f}%"
    return f"{p:.1f}%"


def fmb(kb):
    return "–" if not kb else f"{kb / 1024:.0f} MB"


def fcores(c):
    return "–" if c is None else f"{c:.2f}"


# --------------------------------------------------------------------------------------------
# render: chart


NOISY = 0.25  # cores of other work above which a run counts as disturbed


def line_chart(title, series, xmax, xticks, xlabel, ylabel, marks=(), vlines=(), footnote=""):
    """A log-y line chart as SVG text.

    series: [(name, color, dashed, [(x, y, label or None), ...])]
    marks:  [(x, y, text)] target crosses; vlines: [(x, text)] vertical markers.
    """
    W, H = 760, 440
    ml, mr, mt, mb = 70, 190, 40, 55
    pw, ph = W - ml - mr, H - mt - mb
    ys = [p[1] for _, _, _, pts in series for p in pts] + [m[1] for m in marks]
    ymin = 1.0
    ymax = max(10.0, max(ys, default=10.0) * 1.3)
    lmin, lmax = math.log10(ymin), math.log10(ymax)

    def X(n):
        return ml + n / xmax * pw

    def Y(v):
        v = max(v, ymin)
        return mt + ph - (math.log10(v) - lmin) / (lmax - lmin) * ph

    o = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{ml}" y="22" font-size="15" font-weight="bold">{title}</text>',
    ]
    tick = 1.0
    while tick <= ymax:
        for mult in (1, 3):
            t = tick * mult
            if ymin <= t <= ymax:
                y = Y(t)
                o.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" stroke="#e9ecef"/>')
                label = f"{t / 1000:g} s" if t >= 1000 else f"{t:g} ms"
                o.append(f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#495057">{label}</text>')
        tick *= 10
    for n in xticks:
        x = X(n)
        o.append(f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{mt + ph}" stroke="#f1f3f5"/>')
        o.append(f'<text x="{x:.1f}" y="{mt + ph + 18}" text-anchor="middle" fill="#495057">{n:g}</text>')
    o.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#868e96"/>')
    o.append(f'<text x="{ml + pw / 2:.0f}" y="{H - 12}" text-anchor="middle" fill="#212529">{xlabel}</text>')
    o.append(
        f'<text transform="translate(16 {mt + ph / 2:.0f}) rotate(-90)" text-anchor="middle" '
        f'fill="#212529">{ylabel}</text>'
    )
    for x0, text in vlines:
        x = X(x0)
        o.append(f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{mt + ph}" stroke="#2f9e44" stroke-dasharray="3 3"/>')
        o.append(f'<text x="{x + 4:.1f}" y="{mt + 14}" fill="#2f9e44">{text}</text>')
    for n, t, text in marks:
        x, y = X(n), Y(t)
        o.append(
            f'<path d="M{x - 6:.1f} {y - 6:.1f} L{x + 6:.1f} {y + 6:.1f} M{x - 6:.1f} {y + 6:.1f} '
            f'L{x + 6:.1f} {y - 6:.1f}" stroke="#2f9e44" stroke-width="2"/>'
        )
        if x > ml + pw * 0.75:
            o.append(f'<text x="{x + 6:.1f}" y="{y + 20:.1f}" text-anchor="end" fill="#2f9e44">{text}</text>')
        else:
            o.append(f'<text x="{x + 9:.1f}" y="{y + 4:.1f}" fill="#2f9e44">{text}</text>')
    for k, (name, c, dashed, pts) in enumerate(series):
        if not pts:
            continue
        d = " ".join(f"{'M' if i == 0 else 'L'}{X(n):.1f} {Y(v):.1f}" for i, (n, v, _) in enumerate(pts))
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        o.append(f'<path d="{d}" fill="none" stroke="{c}" stroke-width="2.5"{dash}/>')
        for n, v, lab in pts:
            if lab is None:
                continue
            x, y = X(n), Y(v)
            # A label ending in "*" marks a run disturbed by other work: hollow marker.
            if lab.endswith("*"):
                o.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="white" stroke="{c}" stroke-width="2"/>')
            else:
                o.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{c}"/>')
            # Each series gets its own corner so labels of nearby points do not overwrite each
            # other; near the right edge all go to the left.
            right_edge = x > ml + pw * 0.8
            side, dy = {0: ("r", -8), 1: ("l", -8), 2: ("r", 17)}.get(k, ("r", 17))
            if right_edge:
                side, dy = "l", {1: 17}.get(k, -8)
            if side == "l":
                o.append(f'<text x="{x - 7:.1f}" y="{y + dy:.1f}" text-anchor="end" fill="{c}" font-size="11">{lab}</text>')
            else:
                o.append(f'<text x="{x + 7:.1f}" y="{y + dy:.1f}" fill="{c}" font-size="11">{lab}</text>')
    lx, ly = ml + pw + 18, mt + 10
    i = 0
    for name, c, dashed, pts in series:
        if not pts:
            continue
        y = ly + i * 22
        i += 1
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        o.append(f'<line x1="{lx}" y1="{y}" x2="{lx + 24}" y2="{y}" stroke="{c}" stroke-width="2.5"{dash}/>')
        o.append(f'<text x="{lx + 30}" y="{y + 4}" fill="#212529">{name}</text>')
    if footnote:
        o.append(f'<text x="{ml + pw + 18}" y="{mt + ph}" fill="#495057" font-size="10">'
                 + "".join(f'<tspan x="{ml + pw + 18}" dy="{0 if i == 0 else 13}">{t}</tspan>'
                           for i, t in enumerate(wrap(footnote, 30))) + "</text>")
    o.append("</svg>")
    return "\n".join(o) + "\n"


def wrap(text, width):
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
    if cur:
        lines.append(cur)
    return lines


def svg_chart(doc):
    """p99 latency vs viewers, base64 runs, every server."""
    series = []
    for srv in SERVERS:
        pts = []
        for scen in ("v1000", "v2000", "v5000"):
            m = metrics(run_of(doc, scen, srv))
            if m and "error" not in m and m.get("p99") is not None:
                lab = fdur(m["p99"])
                dl = m.get("delivered")
                if dl is not None and dl < 0.999:
                    lab += f" ({fpct(dl)} delivered)"
                if (m.get("other_cpu") or 0) > NOISY:
                    lab += " *"
                pts.append((SCENARIOS[scen][1], m["p99"], lab))
        series.append((SERVER_NAMES[srv], COLORS[srv], srv == "floor", pts))
    return line_chart(
        "p99 end-to-end latency vs viewers (30 fps, 10 KB frames as base64, one 2-core machine)",
        series,
        5500,
        (1000, 2000, 3000, 4000, 5000),
        "viewers",
        "p99 latency (log scale)",
        marks=((2000, 30, "target 30 ms"), (5000, 250, "target 250 ms")),
        footnote=f"* hollow: other work used more than {NOISY} cores during that run"
        if any(p[2].endswith("*") for _, _, _, pts in series for p in pts)
        else "",
    )


def svg_stalled(doc):
    """Per-second p99 of the stalled runs (and the 1000-viewer run without them)."""
    series, vlines, xmax = [], [], 10
    for scen, srv, name, dashed in (
        ("stalled", "streamhub", "StreamHub, +200 stalled", False),
        ("stalled", "node", "Node.js, +200 stalled", False),
        ("v1000", "streamhub", "StreamHub, no stalled", True),
    ):
        r = run_of(doc, scen, srv)
        if not r or "report" not in r:
            continue
        tl = r["report"].get("latency_timeline") or []
        pts = [(t["t_s"] + 0.5, t["p99_ms"], None) for t in tl]
        xmax = max(xmax, max((p[0] for p in pts), default=0) + 1)
        series.append((name, COLORS[srv], dashed, pts))
        st = r["report"].get("stalled")
        if srv == "streamhub" and st and st.get("evicted_at_s"):
            ev = st["evicted_at_s"]
            vlines.append((min(ev), f"first closed ({len(ev)} by {max(ev):.0f} s)"))
    if not series:
        return None
    step = 5 if xmax <= 60 else 10
    return line_chart(
        "p99 latency per second, 1000 healthy viewers + 200 that never read",
        series,
        xmax,
        tuple(range(0, int(xmax) + 1, step)),
        "seconds since the first frame (by send time)",
        "p99 latency (log scale)",
        vlines=vlines,
    )


# --------------------------------------------------------------------------------------------
# render: page


def gbits(r, mm):
    """Bits per second delivered to viewers over the window, in Gbit/s."""
    if not mm or "error" in mm:
        return None
    if "floor" in r:
        fl = r["floor"]
        return fl["client"]["received"] / fl["seconds"] * fl["bytes"] * 8 / 1e9
    rep = mm["report"]
    d = rep.get("delivery") or {}
    if not d.get("fraction"):
        return None
    return d["fraction"] * d["healthy_viewers"] * rep["fps"] * rep["wire_data_bytes"] * 8 / 1e9


def pinned(doc):
    """{server: [(n, metrics, Gbit/s)]} of the pinned sweep, and viewers per core per server."""
    out, per_core = {}, {}
    for srv in SERVERS:
        rows = []
        for n in PINNED:
            r = run_of(doc, f"pinned{n}", srv)
            if r is None:
                continue
            mm = metrics(r)
            rows.append((n, mm, gbits(r, mm)))
        if not rows:
            continue
        out[srv] = rows
        good = [n for n, mm, _ in rows if "error" not in mm and mm["p99"] is not None
                and mm["p99"] <= PINNED_P99_MS and (mm["delivered"] or 0) >= 0.999]
        per_core[srv] = max(good) if good else 0
    return out, per_core


def targets13(doc):
    """(scenario, [(check, measured, ok)]) of issue 13's targets, for the Socket.IO path."""
    def m(s, srv="streamhub-sio"):
        return metrics(run_of(doc, s, srv))

    def val(mm, key):
        return None if not mm or "error" in mm else mm.get(key)

    def ratio(a, b):
        return a / b if a is not None and b else None

    def check(text, a, b, limit, fmt):
        r = ratio(a, b)
        return (text, f"{fmt(a)} vs {fmt(b)} = {r:.2f}×" if r is not None else "–",
                None if r is None else r <= limit)

    rows = []
    sio, fl = m("v2000"), m("v2000", "floor")
    d = val(sio, "delivered")
    rows.append(("v2000", [
        ("delivered 100%", fpct(d), None if d is None else d >= 1.0),
        check("p99 ≤ 1.5 × the floor's", val(sio, "p99"), val(fl, "p99"), 1.5, fdur),
        check("server CPU ≤ 1.3 × the floor's", val(sio, "cpu"), val(fl, "cpu"), 1.3, fcores),
    ]))
    sio, fl = m("v5000"), m("v5000", "floor")
    d, df = val(sio, "delivered"), val(fl, "delivered")
    rss = val(sio, "rss_peak_kb")
    rows.append(("v5000", [
        ("delivered ≥ the floor's", f"{fpct(d)} vs {fpct(df)}",
         None if d is None or df is None else d >= df),
        check("p99 ≤ 1.5 × the floor's", val(sio, "p99"), val(fl, "p99"), 1.5, fdur),
        ("peak RSS ≤ 400 MB", fmb(rss), None if rss is None else rss <= 400 * 1024),
    ]))
    rows.append(("stalled", [
        check("healthy p99 ≤ 1.2 × the run without them", val(m("stalled"), "p99"),
              val(m("v1000"), "p99"), 1.2, fdur),
    ]))
    rss = val(m("hostile"), "rss_peak_kb")
    rows.append(("hostile", [
        ("peak RSS ≤ 300 MB", fmb(rss), None if rss is None else rss <= 300 * 1024),
    ]))
    return rows


def targets(doc):
    """(scenario, target text, [(check text, measured text, ok or None)]) for StreamHub."""
    rows = []

    def m(s, srv="streamhub"):
        return metrics(run_of(doc, s, srv))

    def ok(cond):
        return None if cond is None else bool(cond)

    def val(mm, key):
        return None if not mm or "error" in mm else mm.get(key)

    for scen, dl_target, p99_target, extra in (
        ("v2000", 1.0, 30, "cpu"),
        ("v5000", 0.999, 250, "rss"),
        ("binary2000", 1.0, 30, None),
    ):
        mm = m(scen)
        checks = []
        d = val(mm, "delivered")
        checks.append(
            (
                "delivered " + ("100%" if dl_target == 1.0 else "≥ 99.9%"),
                fpct(d),
                ok(None if d is None else (d >= dl_target)),
            )
        )
        p = val(mm, "p99")
        checks.append((f"p99 ≤ {p99_target} ms", fdur(p),
                       ok(None if p is None else p <= p99_target)))
        if extra == "cpu":
            c = val(mm, "cpu")
            checks.append(("server ≤ 0.6 cores", fcores(c), ok(None if c is None else c <= 0.6)))
        if extra == "rss":
            r = val(mm, "rss_peak_kb")
            checks.append(("RSS ≤ 400 MB", fmb(r), ok(None if r is None else r <= 400 * 1024)))
        rows.append((scen, checks))

    # Stalled.
    st, base = m("stalled"), m("v1000")
    checks = []
    if st and "error" not in st:
        rep = st["report"]
        sr = rep.get("stalled") or {}
        p, pb = st.get("p99"), val(base, "p99")
        ratio = (p / pb) if (p is not None and pb) else None
        checks.append(
            (
                "healthy p99 ≤ 1.2 × the run without them",
                f"{fdur(p)} vs {fdur(pb)} = {ratio:.2f}×" if ratio is not None else "–",
                ok(None if ratio is None else ratio <= 1.2),
            )
        )
        ev = sr.get("evicted_at_s") or []
        within = sum(1 for t in ev if t <= 30)
        joined = sr.get("joined", 0)
        checks.append(
            (
                "all 200 evicted within 30 s",
                f"{within} of {joined} by 30 s ({len(ev)} by the end"
                + (f", last at {max(ev):.1f} s)" if ev else ")"),
                ok(joined > 0 and within == joined),
            )
        )
        a, b = sr.get("rss_at_last_eviction_kb"), sr.get("rss_end_kb")
        flat = None
        if a and b and len(ev) == joined and joined > 0:
            flat = b <= a * 1.1
        checks.append(
            (
                "RSS flat after eviction",
                f"{fmb(a)} → {fmb(b)}" if a and b else "no eviction to compare with",
                ok(flat),
            )
        )
    rows.append(("stalled", checks))

    bu = m("burst")
    checks = []
    if bu and "error" not in bu:
        con = bu["report"]["connect"]
        checks.append(
            (
                "all registered and joined",
                f"{con['registered']}/{con['joined']} of {con['viewers']}",
                ok(con["joined"] == con["viewers"] and con["registered"] == con["viewers"]),
            )
        )
        checks.append(("connect time reported", f"{con['phase_ms']:.0f} ms", None))
    rows.append(("burst", checks))

    idle = m("idle")
    checks = []
    if idle and "error" not in idle:
        i = idle["report"].get("idle") or {}
        k = i.get("per_viewer_kb")
        checks.append(
            (
                "RSS per idle viewer ≤ 50 KB",
                f"{k:.1f} KB ({i.get('viewers')} viewers)" if k is not None else "–",
                ok(None if k is None else k <= 50),
            )
        )
    rows.append(("idle", checks))
    return rows


def render(a):
    with open(a.results) as f:
        doc = json.load(f)
    mach = doc["machine"]
    reps = [r["report"] for r in doc["runs"] if "report" in r]
    warm = next((r["warmup_s"] for r in reps), 2)
    dur = next((r["duration_s"] for r in reps if r["mode"] == "frames" and not r["connect"]["stalled"]), 10)
    stall_dur = next((r["duration_s"] for r in reps if r["connect"]["stalled"]), 40)
    dur = next((r["duration_s"] for r in reps if r["mode"] == "frames" and not r["connect"]["stalled"]
                and not r["connect"].get("slow")), dur)
    rel_results = os.path.relpath(os.path.abspath(a.results), ROOT)
    svg_rel = os.path.relpath(os.path.abspath(a.svg), os.path.dirname(os.path.abspath(a.md)))
    L = []
    w = L.append
    w("# Benchmarks")
    w("")
    w(
        "<!-- Generated by bench/report.py from "
        f"{rel_results}; do not edit by hand (edit bench/report.py or bench/analysis.md). -->"
    )
    w("")
    w(
        "One streamer and N viewers on **one 2-core machine**: server, load generator and the "
        "viewers' sockets share the same two cores, so every number below includes the load "
        "generator's own cost. Compare servers **within this run** only: machines of the same kind "
        "differ 1.5–2× (see the engineering notes)."
    )
    w("")
    w("## Machine and run")
    w("")
    w(f"- **Machine**: {mach.get('nproc')} CPUs, {mach.get('cpu_model')}, "
      f"{mach.get('mem_total_mb')} MB RAM, Linux {mach.get('kernel')}")
    w(f"- **Software**: {mach.get('rustc')}; Node.js {mach.get('node')}; socket.io "
      f"{mach.get('socket.io')} (baseline); socketioxide {mach.get('socketioxide')} (StreamHub)")
    orig = doc.get("original_run") or doc
    git = orig.get("git") or {}
    w(f"- **Run**: {orig['started']} → {orig['finished']}, commit `{git.get('commit')}`"
      + (" (with uncommitted changes)" if git.get("dirty") else "")
      + f", `{orig.get('invocation') or 'bench/run.sh'}`"
      + (" (quick mode: shorter windows, smaller idle run)" if doc.get("quick") else ""))
    for u in doc.get("updates") or []:
        w(
            f"- **Update** {u['started']}: `{u['invocation']}`; kept (less disturbed than before): "
            + (", ".join(u.get("kept") or []) or "none")
        )
    sut = (doc.get("original_run") or {}).get("server_under_test") or doc.get("server_under_test")
    if sut:
        w(
            f"- **StreamHub under test**: release binary built {sut.get('binary_built', '?')}; last commit "
            f"touching `crates/streamhub*`: `{sut.get('last_commit_touching_server', '?')}`"
            + (" (plus uncommitted changes there)" if sut.get("server_sources_dirty") else "")
        )
    w(f"- **Load average** (1, 5, 15 min) before the latest run: {doc.get('load_before')}; after: {doc.get('load_after')}")
    w(f"- **Raw results**: [`{rel_results}`](../{rel_results})")
    noisy = doc.get("noisy_runs") or []
    if noisy:
        w(
            f"- **Repeated runs**: {len(noisy)} run(s) were repeated because other work on the machine "
            "used more than 0.25 cores during them; the quietest attempt is shown, the others are in "
            "the raw results under `noisy_runs`."
        )
    w("")
    w("## How to run")
    w("")
    w("```sh")
    w("bench/run.sh                          # the whole matrix (~18 min), then this page")
    w("bench/run.sh --quick                  # fewer, shorter points (~4 min)")
    w("bench/run.sh --scenarios v2000,stalled --servers streamhub,node")
    w("bench/run.sh --wait-quiet            # wait for other work to pause; repeat disturbed runs (slower)")
    w("bench/run.sh --update bench/results/FILE.json --scenarios v1000 --servers streamhub   # redo points")
    w("bench/report.py render bench/results/FILE.json --md docs/benchmarks.md --svg docs/img/bench-p99.svg")
    w("```")
    w("")
    w(
        "`bench/run.sh` builds the release binaries (`cargo build --release -p streamhub -p "
        "streamhub-bench`), installs the Node baseline (`npm ci` in `bench/node-baseline/`), "
        "builds the raw-TCP floor from `shared/tools/fanout-floor` in a temporary directory, raises "
        "`ulimit -n`, then starts a fresh server for every run and stops it afterwards. Each load "
        "generator run is capped by `timeout`, so a server that stops answering yields a partial or "
        "failed row, never a hang. The load generator alone:"
    )
    w("")
    w("```sh")
    w("target/release/streamhub-bench --url http://127.0.0.1:3000 --viewers 2000 --fps 30 \\")
    w("    --frame-size 10000 --duration 10 --server-pid $(pgrep -n streamhub)   # --json, --binary,")
    w("    # --stalled 200, --ramp 0, --idle; see --help")
    w("```")
    w("")
    w("<details><summary>Exact commands of this run</summary>")
    w("")
    w("```")
    for c in doc.get("commands", []):
        w(c.replace(ROOT + "/", ""))
    w("```")
    w("")
    w("</details>")
    w("")
    w("## Method")
    w("")
    w(
        "- **Load**: one streamer sends `stream:data:send` at 30 fps with 10,000-byte frames "
        "(13,336 characters of base64, as the design note's pages send, or a 10,000-byte binary "
        "attachment); N viewers `user:register` as VIEWER and `stream:join`, over raw Engine.IO v4 "
        "websockets (`crates/streamhub-bench`). Viewers connect at 1000/s unless stated."
    )
    w(
        "- **Latency** is end to end: the streamer writes its send time and a frame counter into the "
        "first 16 bytes of each frame's content (inside the base64 for text frames); each viewer "
        "subtracts it from its receive time. Percentiles come from an HdrHistogram of every measured "
        "frame at every healthy viewer."
    )
    w(
        "- **Delivered** = frames received / (healthy viewers × frames sent in the measurement "
        f"window). The first {warm:g} s of frames are warm-up and not counted; the window is "
        f"{dur:g} s ({stall_dur:g} s with stalled viewers); after the last frame the "
        "viewers get up to 5 s to receive what is in flight. Anything later counts as lost."
    )
    w(
        "- **Server CPU** is user+system time of the server process over the measurement window "
        "(`/proc/PID/stat`), in cores; **RSS** is the peak of `VmRSS` sampled every 500 ms and "
        "`VmHWM`. **Bench CPU** is the load generator's own use over the same window; **other "
        "load** is what the rest of the machine used meanwhile (`/proc/stat` busy time minus "
        "server and load generator): other work competing for the two cores."
    )
    w(
        "- **Floor**: `fanout-floor` writes one pre-built buffer of the same size to N plain TCP "
        "sockets at 30 fps (no framing, no JSON, no base64; a queue of 8 per socket) and its client "
        "reads and discards. No fan-out server on this machine can beat it. Its latency covers "
        "every frame (no warm-up), its CPU is the sending period's."
    )
    w(
        "- **Stalled viewers** join and never read their socket again. A closure is seen in "
        "`/proc/net/tcp` (the server's side of the connection leaves ESTABLISHED or disappears, or "
        "the client's side is reset), polled every 500 ms; times count from the first frame."
    )
    w(
        "- **Idle**: viewers join, no frame is sent; RSS per idle viewer = (server RSS 3 s after "
        "the last join − RSS before the first viewer) / viewers joined."
    )
    w(
        "- **Slow viewers** read a frame, then pause for 1 / (0.25 × 30 fps) before reading on "
        "(`--slow 200 --slow-fraction 0.25`); they are left out of the healthy figures and "
        "reported on their own. **Hostile**: 10 reading viewers and 200 that never read, 1 MB "
        "binary frames at 10 fps; what counts is the server's peak RSS. **Pinned**: `taskset` "
        "puts the server on core 0 and the load generator on core 1 (the floor's server and "
        "client likewise)."
    )
    w("")

    # Main table.
    w("## Results")
    w("")
    w("| scenario | server | joined | delivered | p50 ms | p99 ms | max ms | server CPU cores | server RSS peak | bench CPU cores | other load, cores | notes |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for scen in ORDER:
        if scen == "idle":
            continue
        for srv in SERVERS:
            r = run_of(doc, scen, srv)
            if r is None:
                continue
            m = metrics(r)
            name = SCENARIOS[scen][0]
            if "error" in m:
                w(f"| {name} | {SERVER_NAMES[srv]} | – | – | – | – | – | – | – | – | – | run failed: {m['error']} |")
                continue
            notes = "; ".join(m["notes"])
            if scen == "burst" and m.get("phase_ms") is not None:
                notes = (f"connect phase {m['phase_ms']:.0f} ms; " + notes).strip("; ")
            w(
                f"| {name} | {SERVER_NAMES[srv]} | {m['joined']}/{m['of']} | {fpct(m['delivered'])} | "
                f"{fms(m['p50'])} | {fms(m['p99'])} | {fms(m['max'])} | {fcores(m['cpu'])} | "
                f"{fmb(m['rss_peak_kb'])} | {fcores(m['bench_cpu'])} | {fcores(m['other_cpu'])} | {notes} |"
            )
    w("")
    w(f"![p99 latency vs viewers]({svg_rel})")
    w("")

    # Issue 13: the Socket.IO path against the floor.
    w("## Issue 13 targets: the Socket.IO path against the floor (same run)")
    w("")
    w("| scenario | target | measured | met |")
    w("|---|---|---|---|")
    for scen, checks in targets13(doc):
        name = SCENARIOS[scen][0]
        for text, measured, okv in checks:
            mark = "–" if okv is None else ("yes" if okv else "**no**")
            w(f"| {name} | {text} | {measured} | {mark} |")
    w("")

    sweep, per_core = pinned(doc)
    if sweep:
        w("## Pinned: the server on one core, the load generator on the other")
        w("")
        w(
            "`taskset -c 0` for the server (the floor's server), `taskset -c 1` for the load "
            "generator (the floor's client): a load generator that has a core to itself cannot "
            f"flatter the server. Audiences grow by 1000 until p99 passes {PINNED_P99_MS} ms or "
            "a frame in a thousand goes missing. **Viewers per core** is the largest audience "
            f"within both; **CPU per Gbit/s** is server cores over the bits delivered per second."
        )
        w("")
        w("| server | viewers per core (p99 ≤ 100 ms) | " + " | ".join(f"{n}: delivered, p99, cores, cores per Gbit/s" for n in PINNED if any(n == x for rows in sweep.values() for x, _, _ in rows)) + " |")
        shown = [n for n in PINNED if any(n == x for rows in sweep.values() for x, _, _ in rows)]
        w("|---|---|" + "---|" * len(shown))
        for srv, rows in sweep.items():
            cells = []
            by_n = {n: (mm, g) for n, mm, g in rows}
            for n in shown:
                if n not in by_n:
                    cells.append("–")
                    continue
                mm, g = by_n[n]
                if "error" in mm:
                    cells.append("failed")
                    continue
                cpg = (mm["cpu"] / g) if mm["cpu"] is not None and g else None
                cells.append(f"{fpct(mm['delivered'])}, {fdur(mm['p99'])}, {fcores(mm['cpu'])}, "
                             + (f"{cpg:.2f}" if cpg is not None else "–"))
            w(f"| {SERVER_NAMES[srv]} | {per_core.get(srv, 0) or '< 1000'} | " + " | ".join(cells) + " |")
        w("")

    rows = []
    for srv in VIEWER_SERVERS:
        m = metrics(run_of(doc, "slow", srv))
        if not m or "error" in m:
            continue
        base = metrics(run_of(doc, "v1000", srv))
        sl = m["report"].get("slow") or {}
        lost = sl.get("lost", 0)
        rows.append(
            f"| {SERVER_NAMES[srv]} | {fpct(m['delivered'])} | {fdur(m['p99'])} | "
            + (fdur(base["p99"]) if base and "error" not in base else "–")
            + f" | {sl.get('joined', 0)} of {sl.get('viewers', 0)} | {fpct(sl.get('received_fraction'))} | "
            + (f"{lost}: " + ", ".join(f"{k} {v}" for k, v in (sl.get("lost_reasons") or {}).items()) if lost else "0")
            + f" | {fcores(m['cpu'])} | {fmb(m['rss_peak_kb'])} |"
        )
    if rows:
        w("## Viewers that read slowly")
        w("")
        w("200 viewers read a quarter of the frames (each pauses 4 frame intervals after every frame it gets), beside 1000 healthy ones. They should get frames at their pace (newest first, levels), cost the server a bounded amount, and not slow the others.")
        w("")
        w("| server | healthy delivered | healthy p99 | p99 without them (v1000) | slow joined | frames the slow got | slow disconnected | server CPU | server RSS peak |")
        w("|---|---|---|---|---|---|---|---|---|")
        L.extend(rows)
        w("")
    rows = []
    for srv in VIEWER_SERVERS:
        m = metrics(run_of(doc, "hostile", srv))
        if not m or "error" in m:
            continue
        sr = m["report"].get("stalled") or {}
        rows.append(
            f"| {SERVER_NAMES[srv]} | {fpct(m['delivered'])} | {fdur(m['p99'])} | {sr.get('evicted', 0)} of {sr.get('joined', 0)} | "
            f"{fmb(m['rss_peak_kb'])} | {fcores(m['cpu'])} |"
        )
    if rows:
        w("## Hostile memory: 1 MB frames and viewers that never read")
        w("")
        w("10 viewers read, 200 join and never read, the streamer sends 1 MB binary frames at 10 fps: what each never-reading viewer can make the server hold.")
        w("")
        w("| server | healthy delivered | healthy p99 | never-reading closed | server RSS peak | server CPU |")
        w("|---|---|---|---|---|---|")
        L.extend(rows)
        w("")

    # Targets.
    w("## Issue 5 targets (StreamHub)")
    w("")
    w("| scenario | target | measured | met |")
    w("|---|---|---|---|")
    for scen, checks in targets(doc):
        name = SCENARIOS[scen][0]
        if not checks:
            w(f"| {name} | – | not run | – |")
        for text, measured, okv in checks:
            mark = "–" if okv is None else ("yes" if okv else "**no**")
            w(f"| {name} | {text} | {measured} | {mark} |")
    w("")

    # Cluster.
    cl_rows, cl_checks = [], []
    for srv in ("streamhub-sio", "streamhub"):
        r, single = run_of(doc, "cluster", srv), run_of(doc, "v2000", srv)
        m, ms = metrics(r), metrics(single)
        if not m or "error" in m:
            continue
        c = r.get("cluster") or {}
        watched = {w["name"]: w for w in m["report"].get("watched") or []}
        frames = c.get("frames") or 0
        per_frame_in = c.get("bus_bytes_in", 0) / frames if frames else None
        per_frame_out = c.get("bus_bytes_out", 0) / frames if frames else None
        redis = (watched.get("redis") or {}).get("cpu_cores")
        cores = [m["cpu"], (watched.get("node a") or {}).get("cpu_cores"), (watched.get("node c") or {}).get("cpu_cores")]
        cl_rows.append(
            f"| {SERVER_NAMES[srv]} | {fpct(m['delivered'])} | {fms(m['p50'])} | {fms(m['p99'])} | "
            + (f"{fms(ms['p50'])} / {fms(ms['p99'])}" if ms and "error" not in ms else "–")
            + f" | {fcores(cores[1])} / {fcores(cores[0])} / {fcores(cores[2])} | {fcores(redis)} | "
            + (f"{per_frame_out:.0f} B out, {per_frame_in:.0f} B in" if per_frame_in is not None else "–")
            + f" (frame {c.get('frame_bytes', '–')} B, {c.get('followers', 2)} nodes with viewers) |"
        )
        ok = lambda v: None if v is None else bool(v)
        cl_checks.append((srv, "delivered ≥ 99.9%", fpct(m["delivered"]), ok(m["delivered"] is not None and m["delivered"] >= 0.999)))
        if ms and "error" not in ms and m["p50"] is not None and ms["p50"] is not None:
            cl_checks.append((srv, "bus hop adds ≤ 5 ms to p50", f"{m['p50'] - ms['p50']:+.1f} ms", m["p50"] - ms["p50"] <= 5))
            cl_checks.append((srv, "p99 ≤ 1.3 × single node", f"{m['p99'] / ms['p99']:.2f}×", m["p99"] <= 1.3 * ms["p99"]))
        if per_frame_in is not None and c.get("frame_bytes"):
            want = c["frame_bytes"] * c.get("followers", 2)
            cl_checks.append((srv, "bus bytes in per frame ≈ frame × nodes with viewers (+ header)", f"{per_frame_in:.0f} B vs {want} B", per_frame_in <= want * 1.05))
        cl_checks.append((srv, "Redis ≤ 0.1 core", fcores(redis), ok(redis is not None and redis <= 0.1)))
    if cl_rows:
        w("## Cluster: 2000 viewers split over two nodes, streamer on a third")
        w("")
        w("Same run, same load as \"2000 viewers, base64\" on one node (the single-node column). The bus bytes are the payload bytes the nodes counted (`streamhub_cluster_bytes_out_total` on a, `streamhub_cluster_bytes_in_total` on b and c) over the run, per frame sent.")
        w("")
        w("| server | delivered | p50 ms | p99 ms | single node p50 / p99 | CPU cores a / b / c | Redis CPU | bus bytes per frame |")
        w("|---|---|---|---|---|---|---|---|")
        L.extend(cl_rows)
        w("")
        w("| server | issue 12 target | measured | met |")
        w("|---|---|---|---|")
        for srv, text, measured, okv in cl_checks:
            mark = "–" if okv is None else ("yes" if okv else "**no**")
            w(f"| {SERVER_NAMES[srv]} | {text} | {measured} | {mark} |")
        w("")

    # Stalled details.
    st_rows = []
    for srv in VIEWER_SERVERS:
        m = metrics(run_of(doc, "stalled", srv))
        if not m or "error" in m:
            continue
        sr = m["report"].get("stalled") or {}
        ev = sr.get("evicted_at_s") or []
        st_rows.append(
            f"| {SERVER_NAMES[srv]} | {sr.get('evicted', 0)} of {sr.get('joined', 0)} | "
            + (f"{min(ev):.1f} s / {sorted(ev)[len(ev) // 2]:.1f} s / {max(ev):.1f} s" if ev else "–")
            + f" | {fdur(m['p99'])} | {fmb(sr.get('rss_at_last_eviction_kb'))} → {fmb(sr.get('rss_end_kb'))} | "
            f"{m['report']['duration_s']:.0f} s |"
        )
    stalled_svg = svg_stalled(doc)
    stalled_path = os.path.join(os.path.dirname(os.path.abspath(a.svg)), "bench-stalled.svg")
    if st_rows:
        w("## Viewers that never read")
        w("")
        w("| server | closed by the server | first / median / last closure (after the first frame) | healthy p99 | RSS at last closure → end | window |")
        w("|---|---|---|---|---|---|")
        L.extend(st_rows)
        w("")
        if stalled_svg:
            rel = os.path.relpath(stalled_path, os.path.dirname(os.path.abspath(a.md)))
            w(f"![p99 per second with stalled viewers]({rel})")
            w("")

    # Connect burst and idle.
    rows = []
    for srv in VIEWER_SERVERS:
        m = metrics(run_of(doc, "burst", srv))
        if not m or "error" in m:
            continue
        con = m["report"]["connect"]
        j = con.get("join_ms") or {}
        rows.append(
            f"| {SERVER_NAMES[srv]} | {con['connected']} / {con['registered']} / {con['joined']} of {con['viewers']} | "
            f"{con['phase_ms']:.0f} ms | {fdur(j.get('p50_ms'))} / {fdur(j.get('p99_ms'))} / {fdur(j.get('max_ms'))} |"
        )
    if rows:
        w("## 1000 viewers connecting at once")
        w("")
        w("| server | connected / registered / joined | connect phase (first attempt → last join) | per-viewer join time p50 / p99 / max |")
        w("|---|---|---|---|")
        L.extend(rows)
        w("")
    rows = []
    for srv in VIEWER_SERVERS:
        m = metrics(run_of(doc, "idle", srv))
        if not m or "error" in m:
            continue
        i = m["report"].get("idle") or {}
        con = m["report"]["connect"]
        k = i.get("per_viewer_kb")
        rows.append(
            f"| {SERVER_NAMES[srv]} | {con['joined']} of {con['viewers']} | {fmb(i.get('rss_before_kb'))} → "
            f"{fmb(i.get('rss_after_kb'))} | " + (f"{k:.1f} KB" if k is not None else "–")
            + f" | {con['phase_ms'] / 1000:.1f} s | {fcores(m['cpu'])} |"
        )
    if rows:
        w("## Idle viewers")
        w("")
        w("| server | joined | RSS before → after | RSS per idle viewer | connect phase | server CPU while idle |")
        w("|---|---|---|---|---|---|")
        L.extend(rows)
        w("")

    analysis = os.path.join(ROOT, "bench", "analysis.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            text = f.read().strip()
        if text:
            w(text)
            w("")

    os.makedirs(os.path.dirname(os.path.abspath(a.svg)), exist_ok=True)
    with open(a.svg, "w") as f:
        f.write(svg_chart(doc))
    if stalled_svg:
        with open(stalled_path, "w") as f:
            f.write(stalled_svg)
    with open(a.md, "w") as f:
        f.write("\n".join(L).rstrip() + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="runs.jsonl + machine facts -> results JSON")
    c.add_argument("--runs", required=True)
    c.add_argument("--noisy", default="", help="runs repeated because other work competed")
    c.add_argument("--base", default="", help="results file to update: its other points are kept")
    c.add_argument("--out", required=True)
    c.add_argument("--started", default="")
    c.add_argument("--load-before", default="")
    c.add_argument("--commands", default="")
    c.add_argument("--invocation", default="bench/run.sh")
    c.add_argument("--quick", default="0")
    r = sub.add_parser("render", help="results JSON -> benchmarks.md + SVG chart")
    r.add_argument("results")
    r.add_argument("--md", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    r.add_argument("--svg", default=os.path.join(ROOT, "docs", "img", "bench-p99.svg"))
    a = p.parse_args()
    if a.cmd == "collect":
        collect(a)
    else:
        render(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())

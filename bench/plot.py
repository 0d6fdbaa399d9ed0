#!/usr/bin/env python3
"""Draws the README's charts (SVG, standard library only) from bench/results/*.json.

usage: bench/plot.py [--results bench/results] [--out docs/bench]
"""

import argparse
import json
import os


def bars(title, groups, series, unit, path, colors=("#9aa5b1", "#5b8def", "#2457c5", "#d9822b", "#2e8b57")):
    """groups: [(label, {series: value})]; one cluster of bars per group."""
    w, h, left, top, bottom = 760, 300, 70, 40, 60
    vmax = max((v for _, d in groups for v in d.values() if v is not None), default=1) or 1
    cw = (w - left - 20) / max(1, len(groups))
    bw = min(40, (cw - 20) / max(1, len(series)))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="#fff"/>',
           f'<text x="{left}" y="22" font-size="14" font-weight="bold">{title}</text>']
    for i in range(5):
        y = top + (h - top - bottom) * i / 4
        val = vmax * (1 - i / 4)
        out.append(f'<line x1="{left}" x2="{w - 20}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6eb"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7380">{val:,.0f}</text>')
    for gi, (label, d) in enumerate(groups):
        x0 = left + gi * cw + 10
        for si, s in enumerate(series):
            v = d.get(s)
            if v is None:
                continue
            bh = (h - top - bottom) * v / vmax
            x = x0 + si * bw
            y = h - bottom - bh
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" height="{bh:.1f}" fill="{colors[si % len(colors)]}">'
                       f'<title>{s}: {v:,.1f} {unit}</title></rect>')
        out.append(f'<text x="{x0 + len(series) * bw / 2:.1f}" y="{h - bottom + 16}" text-anchor="middle">{label}</text>')
    for si, s in enumerate(series):
        x = left + si * 150
        out.append(f'<rect x="{x}" y="{h - 22}" width="10" height="10" fill="{colors[si % len(colors)]}"/>'
                   f'<text x="{x + 14}" y="{h - 13}">{s}</text>')
    out.append(f'<text x="{w - 20}" y="22" text-anchor="end" fill="#6b7380">{unit}</text></svg>')
    with open(path, "w") as f:
        f.write("\n".join(out))
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="bench/results")
    ap.add_argument("--out", default="docs/bench")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    p = os.path.join(a.results, "proxy.json")
    if os.path.exists(p):
        rows = json.load(open(p))
        names = {"direct": "upstream directly", "off": "aiwaf --mode off", "block": "aiwaf --mode block", "modsec": "nginx+ModSecurity+CRS"}
        targets = [t for t in ["direct", "off", "block", "modsec"] if any(r["target"] == t for r in rows)]
        groups = []
        for c in sorted({r["connections"] for r in rows}):
            groups.append((f"{c} connections", {names[r["target"]]: r["rps"] for r in rows if r["connections"] == c and r["target"] in names}))
        bars("Proxy throughput (bench/proxy.sh)", groups, [names[t] for t in targets], "req/s", os.path.join(a.out, "proxy.svg"))
    p = os.path.join(a.results, "eval.json")
    if os.path.exists(p):
        r = json.load(open(p))
        groups = []
        for lab, d in r.get("live", {}).get("labels", {}).items():
            off = r.get("offline", {}).get("by_label", {}).get(lab, {})
            groups.append((lab, {
                "live: clients blocked %": 100.0 * d["clients_blocked"] / max(1, d["clients"]),
                "offline training: clients banned %": 100.0 * off.get("banned", 0) / max(1, off.get("clients", 1)) if off else None,
            }))
        if groups:
            bars("Detection per label (bench/eval.py)", groups, ["live: clients blocked %", "offline training: clients banned %"], "%",
                 os.path.join(a.out, "detection.svg"), colors=("#2457c5", "#d9822b"))


if __name__ == "__main__":
    main()

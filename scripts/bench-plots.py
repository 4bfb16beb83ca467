#!/usr/bin/env python3
"""bench-plots.py — turn the output of `make bench` into the figures of
docs/benchmarks.md.

    python3 scripts/bench-plots.py [RUN.txt] [OUT_DIR]

RUN.txt defaults to docs/benchmarks/run.txt (the run the docs show; `make
docs-bench` measures a new one and calls this), OUT_DIR to docs/benchmarks.
Writes, from the lines the bench prints:

    throughput.svg   events/s of outbox-cdc per sink as a ratio to
                     pg_recvlogical draining the same WAL (the limit)
    latency.svg      commit-to-acknowledgement p50 and p99 per sink and rate
    summary.md       the same figures as tables, included by benchmarks.md

Needs matplotlib (docs/requirements-plots.txt; `make bench-plots` installs it
into the docs virtualenv). The SVGs are reproducible: same run, same bytes.
"""
import os
import re
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({
    "svg.hashsalt": "outbox-cdc",  # stable ids: same input, same file
    "svg.fonttype": "none",  # text stays text, in the page's font
    "font.family": "sans-serif",
    "font.size": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
})
COLORS = {"file": "#7e57c2", "kafka": "#ef6c00", "nats": "#2e7d32", "redis": "#c62828", "limit": "#607d8b"}


def parse(text):
    """Returns the run's header, throughput rows, big transaction and latency rows."""
    run = {"header": "", "throughput": [], "bigtx": None, "latency": []}
    m = re.search(r"^outbox-cdc bench: (.*)$", text, re.M)
    if m:
        run["header"] = m.group(1)
    def share(v):  # a walsender or broker CPU column: a fraction of one core, or "-"
        return None if v in (None, "-") else float(v)

    def cores(m, i):  # the "cores busy" column, "1.71 of 2", or None in older runs
        return None if m.group(i) is None else (float(m.group(i)), int(m.group(i + 1)))

    for m in re.finditer(r"^pg_recvlogical \(limit\)\s+(\d+)\s+1\.00(?:(?:\s+-){4}\s+(\S+)\s+-(?:\s+([\d.]+) of (\d+))?)?", text, re.M):
        run["throughput"].append({"sink": "pg_recvlogical", "eps": int(m.group(1)), "ratio": 1.0, "cpu": None, "rss": None,
                                  "anon": None, "vsfile": None, "walsender": share(m.group(2)), "broker": None,
                                  "cores": cores(m, 3)})
    # Runs before the anonymous-memory column have one MiB figure per row.
    # Runs before the walsender and broker columns end after the memory.
    for m in re.finditer(r"^outbox-cdc → (\w+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) MiB(?:\s+([\d.]+) MiB)?"
                         r"(?:\s+(\S+)\s+(\S+)\s+(\S+)(?:\s+([\d.]+) of (\d+))?)?$", text, re.M):
        run["throughput"].append({"sink": m.group(1), "eps": int(m.group(2)), "ratio": float(m.group(3)),
                                  "cpu": float(m.group(4)), "rss": float(m.group(5)),
                                  "anon": float(m.group(6)) if m.group(6) else None,
                                  "vsfile": share(m.group(7)), "walsender": share(m.group(8)), "broker": share(m.group(9)),
                                  "cores": cores(m, 10)})
    run["alone"] = [{"broker": m.group(1), "how": m.group(2), "eps": int(m.group(3)), "broker_us": float(m.group(4)),
                     "client_us": float(m.group(5))}
                    for m in re.finditer(r"^(kafka|nats|redis) \((.+?)\)\s+(\d+)\s+([\d.]+)\s+([\d.]+)$", text, re.M)]
    m = re.search(r"^one (\d+)-row transaction: pg_recvlogical ([\d.]+)s; outbox-cdc → file ([\d.]+)s \(ratio ([\d.]+)\), "
                  r"CPU ([\d.]+) µs/event, peak RSS ([\d.]+) MiB(?: \(anon ([\d.]+) MiB\))?", text, re.M)
    if m:
        run["bigtx"] = {"rows": int(m.group(1)), "limit_s": float(m.group(2)), "file_s": float(m.group(3)),
                        "ratio": float(m.group(4)), "cpu": float(m.group(5)), "rss": float(m.group(6)),
                        "anon": float(m.group(7)) if m.group(7) else None}
    for m in re.finditer(r"^latency (\w+)\s+at\s+(\d+) events/s \(\s*(\d+)-row transactions, (\d+)s\): "
                         r"commit → ack \(histogram\) p50 ([\d.]+) ms, p99 ([\d.]+) ms", text, re.M):
        run["latency"].append({"sink": m.group(1), "rate": int(m.group(2)), "tx": int(m.group(3)),
                               "p50": float(m.group(5)), "p99": float(m.group(6))})
    if not run["throughput"] and not run["latency"]:
        raise SystemExit("bench-plots: no throughput or latency lines found; is this the output of `make bench`?")
    return run


def throughput_plot(run, path):
    rows = [r for r in run["throughput"] if r["sink"] != "pg_recvlogical"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = [r["sink"] for r in rows]
    ratios = [r["ratio"] for r in rows]
    bars = ax.barh(names, ratios, color=[COLORS.get(n, "#455a64") for n in names])
    ax.axvline(1.0, color=COLORS["limit"], linestyle="--", linewidth=1)
    ax.text(1.0, -0.75, " pg_recvlogical = 1.0", color=COLORS["limit"], va="bottom", fontsize=9)
    for bar, r in zip(bars, rows):
        ax.text(bar.get_width() + 0.02, bar.get_y() + bar.get_height() / 2,
                f"{r['ratio']:.2f}  ({r['eps']:,} events/s)", va="center", fontsize=9)
    ax.set_ylim(len(rows) - 0.5, -1.0)  # top to bottom, room for the limit's label
    ax.set_xlim(0, max(ratios + [1.0]) * 1.45)
    ax.set_xlabel("throughput as a ratio to pg_recvlogical on the same WAL (higher is better)")
    ax.set_title("End-to-end throughput per sink", loc="left", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None, "Creator": "outbox-cdc scripts/bench-plots.py"})
    plt.close(fig)


def latency_plot(run, path):
    lat = run["latency"]
    sinks = sorted({r["sink"] for r in lat}, key=lambda s: list(COLORS).index(s) if s in COLORS else 99)
    loads = sorted({(r["rate"], r["tx"]) for r in lat})
    fig, axes = plt.subplots(1, len(loads), figsize=(7, 3.2), sharey=True, squeeze=False)
    for ax, (rate, tx) in zip(axes[0], loads):
        rows = {r["sink"]: r for r in lat if (r["rate"], r["tx"]) == (rate, tx)}
        xs = range(len(sinks))
        p50 = [rows[s]["p50"] if s in rows else 0 for s in sinks]
        p99 = [rows[s]["p99"] if s in rows else 0 for s in sinks]
        ax.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50", color=[COLORS.get(s, "#455a64") for s in sinks])
        ax.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99", color=[COLORS.get(s, "#455a64") for s in sinks], alpha=0.45)
        ax.set_xticks(list(xs), sinks)
        ax.set_yscale("log")
        ax.set_title(f"{rate:,} events/s, {tx}-row transactions", fontsize=10)
    axes[0][0].set_ylabel("commit → ack, ms (log scale)")
    from matplotlib.patches import Patch
    axes[0][-1].legend(handles=[Patch(color="#455a64", label="p50"), Patch(color="#455a64", alpha=0.45, label="p99")],
                       loc="upper right", fontsize=9, frameon=False)
    fig.suptitle("Latency from COMMIT to the broker's acknowledgement (lower is better)", x=0.02, ha="left", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None, "Creator": "outbox-cdc scripts/bench-plots.py"})
    plt.close(fig)


def summary(run):
    out = [f"Run: {run['header']}.", ""]
    if run["throughput"]:
        def num(v, fmt):
            return "–" if v is None else format(v, fmt)

        busy = any(r.get("cores") for r in run["throughput"])
        out += ["| contender | events/s | ratio to pg_recvlogical | vs file | CPU µs/event | peak RSS | of it anonymous "
                "| walsender busy | broker CPU (cores) |" + (" cores busy |" if busy else ""),
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if busy else "")]
        for r in run["throughput"]:
            name = "pg_recvlogical (the limit)" if r["sink"] == "pg_recvlogical" else f"outbox-cdc → {r['sink']}"
            rss = "–" if r["rss"] is None else f"{r['rss']:.1f} MiB"
            anon = "–" if r["anon"] is None else f"{r['anon']:.1f} MiB"
            out.append(f"| {name} | {r['eps']:,} | {r['ratio']:.2f} | {num(r.get('vsfile'), '.2f')} | {num(r['cpu'], '.2f')} "
                       f"| {rss} | {anon} | {num(r.get('walsender'), '.2f')} | {num(r.get('broker'), '.2f')} |"
                       + ((" – |" if not r.get("cores") else f" {r['cores'][0]:.2f} of {r['cores'][1]} |") if busy else ""))
        out.append("")
    if run.get("alone"):
        out += ["Each broker alone (no PostgreSQL, no outbox-cdc; one client in the bench's process, the same number of "
                "events, built before the clock starts):", "",
                "| broker | client | events/s | broker CPU µs/event | client CPU µs/event |", "|---|---|---:|---:|---:|"]
        for r in run["alone"]:
            out.append(f"| {r['broker']} | {r['how']} | {r['eps']:,} | {r['broker_us']:.2f} | {r['client_us']:.2f} |")
        out.append("")
    if run["bigtx"]:
        b = run["bigtx"]
        out += [f"One {b['rows']:,}-row transaction: pg_recvlogical {b['limit_s']:.2f} s, outbox-cdc → file "
                f"{b['file_s']:.2f} s (ratio {b['ratio']:.2f}), {b['cpu']:.2f} µs CPU per event, peak RSS "
                f"{b['rss']:.1f} MiB" + ("" if b["anon"] is None else f" ({b['anon']:.1f} MiB anonymous)") + ".", ""]
    if run["latency"]:
        out += ["| sink | load | p50 | p99 |", "|---|---|---:|---:|"]
        for r in run["latency"]:
            out.append(f"| {r['sink']} | {r['rate']:,} events/s, {r['tx']}-row transactions | {r['p50']:.2f} ms | {r['p99']:.2f} ms |")
        out.append("")
    return "\n".join(out)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "docs/benchmarks/run.txt"
    out = sys.argv[2] if len(sys.argv) > 2 else "docs/benchmarks"
    with open(src, encoding="utf-8") as f:
        run = parse(f.read())
    os.makedirs(out, exist_ok=True)
    throughput_plot(run, os.path.join(out, "throughput.svg"))
    latency_plot(run, os.path.join(out, "latency.svg"))
    with open(os.path.join(out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(summary(run))
    print(f"bench-plots: {src} -> {out}/throughput.svg, latency.svg, summary.md")


if __name__ == "__main__":
    main()

"""The printed tables and the optional PNG of a benchmark run.

`render` turns a results document (see `bench/results.py`) into plain-text tables: raw
limits, backbone figures, ratios, memory and CPU, and the targets with met / not met.
`plot` draws the same figures with matplotlib, which is imported only when a plot is
asked for (it is in the `bench` extra, not a dependency of the backbone).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.cpu_cost import PROCESSES, cpu_per_message
from bench.targets import RatioRow, TargetRow, evaluate, ratios


def fmt(value: object, digits: int = 1) -> str:
    """A number with thousands separators; '-' for a missing one."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "") -> str:
    """Left-aligned first column, right-aligned numbers, one space-padded line per row."""
    cells = [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(row: Sequence[str]) -> str:
        first, *rest = row
        right = (c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))
        return "  ".join([first.ljust(widths[0]), *right])

    out = [title] if title else []
    out += [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    return "\n".join(out)


def met_text(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "NOT MET")


def _raw(results: Mapping[str, Any]) -> str:
    raw = results.get("raw")
    if not raw:
        return "raw limits: not measured"
    k, c, p = raw["kafka"], raw["cassandra"], raw["pipeline"]
    lat = k.get("latency", {})
    rows: list[list[object]] = [
        ["kafka produce (acks=all)", k["records"], k["produce_per_s"], "records/s"],
        ["kafka produce->consume", k["records"], k["produce_consume_per_s"], "records/s"],
        ["kafka produce->consume MiB/s", k["records"], k["mib_per_s"], "MiB/s"],
        [
            f"kafka latency median @{fmt(k.get('latency_rate_per_s'), 0)}/s",
            lat.get("n"),
            lat.get("median_ms"),
            "ms",
        ],
        [
            f"kafka latency p99 @{fmt(k.get('latency_rate_per_s'), 0)}/s",
            lat.get("n"),
            lat.get("p99_ms"),
            "ms",
        ],
        [
            f"cassandra inserts (concurrency {c['concurrency']})",
            c["rows"],
            c["inserts_per_s"],
            "rows/s",
        ],
        ["cassandra page reads (1000/page)", c["rows"], c["read_rows_per_s"], "rows/s"],
        ["raw pipeline produce->consume->insert", p["records"], p["records_per_s"], "records/s"],
    ]
    b = raw.get("cassandra_batches")
    if b:
        per = b["rows_per_batch"]
        rows[-1:-1] = [
            [
                f"one-partition {per}-row batches, sequential",
                b["rows"],
                b["rows_per_s"],
                f"rows/s ({b['batch_median_ms']} ms/batch)",
            ],
            [
                "  same with TCP_NODELAY",
                b["rows"],
                b["rows_per_s_nodelay"],
                f"rows/s ({b['batch_median_ms_nodelay']} ms/batch)",
            ],
        ]
    title = (
        f"RAW LIMITS (record {k['record_bytes']} B on Kafka, row payload "
        f"{c['row_payload_bytes']} B)"
    )
    return table(["measure", "n", "value", "unit"], rows, title)


def _e2e(results: Mapping[str, Any]) -> str:
    e2e = results.get("end_to_end") or {}
    if not e2e:
        return "backbone end to end: not measured"
    rows: list[list[object]] = []
    for n, figures in sorted(e2e.items(), key=lambda kv: int(kv[0])):
        for point in figures["sweep"]:
            best = point is figures["max"] or point == figures["max"]
            errors = ", ".join(f"{k}:{v}" for k, v in point["errors"].items()) or "-"
            rows.append(
                [
                    f"{n} rcpt, {point['concurrency']} senders" + (" (max)" if best else ""),
                    point["messages"],
                    point["messages_per_s"],
                    point["mailbox_entries_per_s"],
                    errors,
                    point["undelivered"],
                ]
            )
    out = [
        table(
            ["throughput (closed loop)", "messages", "msg/s", "entries/s", "errors", "undelivered"],
            rows,
            "BACKBONE END TO END (1 KiB messages, real API)",
        )
    ]
    lat_rows: list[list[object]] = []
    for n, figures in sorted(e2e.items(), key=lambda kv: int(kv[0])):
        lat = figures.get("latency")
        if not lat or "send_to_stream" not in lat:
            continue
        s, c, a = lat["send_to_stream"], lat["created_to_stream"], lat["send_to_201"]
        errors = ", ".join(f"{k}:{v}" for k, v in lat["errors"].items()) or "-"
        lat_rows.append(
            [
                f"{n} rcpt @ {fmt(lat['rate_per_s'])} msg/s",
                s["n"],
                s["median_ms"],
                s["p99_ms"],
                s["max_ms"],
                a["median_ms"],
                c["median_ms"],
                errors,
                lat["lost"],
                lat["scheduler_lag_max_ms"],
            ]
        )
    if lat_rows:
        out.append(
            table(
                [
                    "latency at half max (open loop)",
                    "samples",
                    "median ms",
                    "p99 ms",
                    "max ms",
                    "send->201 med",
                    "201->stream med",
                    "errors",
                    "lost",
                    "sched lag ms",
                ],
                lat_rows,
            )
        )
    return "\n\n".join(out)


def _catch_up(results: Mapping[str, Any]) -> str:
    cu = results.get("catch_up")
    if not cu:
        return "catch-up: not measured"
    rows: list[list[object]] = [
        [
            "sequencer (produce start -> readable)",
            cu["entries"],
            cu["sequenced_per_s"],
            f"producing took {cu.get('produce_seconds', '?')} s",
        ],
        [
            "client paging (limit 1000)",
            cu["paging"]["entries"],
            cu["paging"]["entries_per_s"],
            f"{cu['paging']['seconds']} s, gaps {cu['paging']['gaps']}",
        ],
        [
            "client SSE stream",
            cu["sse"]["entries"],
            cu["sse"]["entries_per_s"],
            f"{cu['sse']['seconds']} s",
        ],
    ]
    title = f"SYNC CATCH-UP ({fmt(cu['entries'])} pending entries, source: {cu['source']})"
    return table(["measure", "entries", "entries/s", "note"], rows, title) + (
        f"\n  backlog: {cu['source_detail']}"
    )


def _ratios(rows: list[RatioRow]) -> str:
    return table(
        ["backbone : raw", "backbone", "raw", "ratio"],
        [[r["name"], r["backbone"], r["raw"], fmt(r["ratio"], 3)] for r in rows],
        "RATIOS TO THE RAW LIMIT (same run)",
    )


def memory_table(results: Mapping[str, Any]) -> str:
    memory = results.get("memory") or {}
    rows = [
        [kind, ", ".join(map(str, m["pids"])), m["peak_rss_mib"], m["hwm_mib"]]
        for kind, m in memory.items()
    ]
    out = table(
        ["process", "pids", "peak RSS MiB (run)", "VmHWM MiB (life)"],
        rows,
        "MEMORY (VmRSS sampled every 0.25 s)",
    )
    phases = results.get("cpu_phases") or []
    if phases:
        kinds = sorted({k for p in phases for k in p["cpu_percent"]})
        rss_kinds = sorted({k for p in phases for k in p.get("peak_rss_mib", {})})
        cpu_rows = [
            [
                p["phase"],
                p["seconds"],
                *(p["cpu_percent"].get(k) for k in kinds),
                *(p.get("peak_rss_mib", {}).get(k) for k in rss_kinds),
            ]
            for p in phases
        ]
        machine = results.get("machine", {}).get("cpus", "?")
        out += "\n\n" + table(
            ["phase", "s", *(f"{k} %cpu" for k in kinds), *(f"{k} MiB" for k in rss_kinds)],
            cpu_rows,
            f"CPU AND PEAK RSS PER PHASE (100% = one core; the machine has {machine}; "
            "other = processes not ours)",
        )
    costs = cpu_per_message(results)
    if costs:
        out += "\n\n" + table(
            ["phase", "messages", *(f"{k} ms" for k in PROCESSES), "total ms"],
            [
                [
                    c["phase"],
                    c["messages"],
                    *(c["ms_per_message"].get(k) for k in PROCESSES),
                    round(sum(c["ms_per_message"].values()), 1),
                ]
                for c in costs
            ],
            "CPU PER MESSAGE (CPU time each process used in the phase / messages sent in it)",
        )
    lag_rows = [
        [p["phase"], series, lag["count"], lag["mean_ms"]]
        for p in phases
        for series, lag in sorted(p.get("worker_lag_ms", {}).items())
        if lag["count"] >= 5
    ]
    if lag_rows:
        out += "\n\n" + table(
            ["phase", "stage", "records", "mean lag ms"],
            lag_rows,
            "WORKER STAGE LAGS (the stack's worker's histograms: append -> decided / projected)",
        )
    return out


def _targets(rows: list[TargetRow]) -> str:
    return table(
        ["target", "value", "needed", "verdict"],
        [
            [
                r["name"],
                fmt(r["value"], 3 if r["unit"] == "ratio" else 1),
                f"{r['op']} {fmt(r['threshold'], 2 if r['unit'] == 'ratio' else 0)} {r['unit']}",
                met_text(r["met"]),
            ]
            for r in rows
        ],
        "TARGETS",
    )


def render(results: Mapping[str, Any]) -> str:
    m = results.get("machine", {})
    head = (
        f"backbone benchmark {results.get('started_at', '')}: {m.get('host')} "
        f"{m.get('cpus')} cpus, {m.get('mem_gib')} GiB, python {m.get('python')}; "
        f"workers {results.get('settings', {}).get('workers')}, "
        f"APIs {results.get('settings', {}).get('apis')}"
    )
    code = results.get("code") or {}
    if code:
        changed = code.get("changed_since_worker_started") or []
        head += (
            f"\ncode: checkout at {code.get('head')}; stack started "
            + ", ".join(f"{k} {v}" for k, v in code.get("stack_started", {}).items())
            + (
                f"; {len(changed)} source file(s) changed since the worker started"
                if changed
                else ""
            )
        )
    parts = [
        head,
        _raw(results),
        _e2e(results),
        _catch_up(results),
        _ratios(ratios(results)),
        memory_table(results),
        _targets(evaluate(results)),
    ]
    if results.get("scale_check"):
        parts.append(
            "SCALE CHECK: new identities creating a template right after the extra processes "
            f"started: {_fresh(results['scale_check'])} answered 201 "
            f"(slowest {results['scale_check']['max_ms']} ms)"
        )
    if results.get("errors"):
        parts.append("ERRORS\n" + "\n".join(f"- {e}" for e in results["errors"]))
    return "\n\n".join(parts)


def _fresh(check: Mapping[str, Any] | None) -> str:
    if not check:
        return "-"
    others = {k: v for k, v in check["statuses"].items() if k != "201"}
    extra = f" ({', '.join(f'{k}:{v}' for k, v in others.items())})" if others else ""
    return f"{check['created_201']}/{check['identities']}{extra}"


def scale_out_table(rows: Sequence[Mapping[str, Any]]) -> str:
    base = rows[0]["messages_per_s"] if rows and rows[0]["messages_per_s"] else None
    return table(
        [
            "workers",
            "APIs",
            "senders",
            "msg/s",
            "entries/s",
            "vs 1+1",
            "errors",
            "undelivered",
            "new ids: template 201",
        ],
        [
            [
                r["workers"],
                r["apis"],
                r["concurrency"],
                r["messages_per_s"],
                r["mailbox_entries_per_s"],
                fmt(r["messages_per_s"] / base, 2) if base else "-",
                ", ".join(f"{k}:{v}" for k, v in r["errors"].items()) or "-",
                r["undelivered"],
                _fresh(r.get("fresh_identities")),
            ]
            for r in rows
        ],
        f"SCALE-OUT ({rows[0]['recipients'] if rows else '?'} rcpt, 1 KiB, best sweep level)",
    )


def _pyplot() -> Any:
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError as exc:
        raise SystemExit(
            "plotting needs matplotlib: pip install -e '.[bench]' (or leave out --plot)"
        ) from exc
    matplotlib.use("Agg")  # files only, no display needed
    return importlib.import_module("matplotlib.pyplot")


def plot(results: Mapping[str, Any], path: Path) -> None:
    """Four panels: throughput raw vs backbone, latency, catch-up, memory vs targets."""
    plt = _pyplot()
    fig, ((a, b), (c, d)) = plt.subplots(2, 2, figsize=(13, 9))
    raw = results.get("raw") or {}
    e2e = results.get("end_to_end") or {}
    bars = {
        "kafka\nprod->cons": raw.get("kafka", {}).get("produce_consume_per_s"),
        "cassandra\ninserts": raw.get("cassandra", {}).get("inserts_per_s"),
        "raw\npipeline": raw.get("pipeline", {}).get("records_per_s"),
        **{f"backbone\n{n} rcpt msg/s": f["max"]["messages_per_s"] for n, f in e2e.items()},
        **{
            f"backbone\n{n} rcpt entries/s": f["max"]["mailbox_entries_per_s"]
            for n, f in e2e.items()
        },
    }
    shown = {k: v for k, v in bars.items() if v}
    a.bar(list(shown), list(shown.values()), color="tab:blue")
    a.set_yscale("log")
    a.set_title("throughput per second (log scale)")
    a.tick_params(axis="x", labelsize=6, labelrotation=30)
    lat = {
        n: f["latency"]["send_to_stream"]
        for n, f in e2e.items()
        if f.get("latency", {}).get("send_to_stream")
    }
    labels = [f"{n} rcpt" for n in lat]
    b.bar([x + " median" for x in labels], [v["median_ms"] for v in lat.values()])
    b.bar([x + " p99" for x in labels], [v["p99_ms"] for v in lat.values()])
    b.axhline(30, color="green", linestyle="--", label="median target 30 ms")
    b.axhline(150, color="red", linestyle="--", label="p99 target 150 ms")
    b.set_title("send -> stream latency at half max (ms)")
    b.legend(fontsize=7)
    cu = results.get("catch_up") or {}
    if cu:
        c.bar(
            ["sequencer", "paging", "SSE"],
            [cu["sequenced_per_s"], cu["paging"]["entries_per_s"], cu["sse"]["entries_per_s"]],
        )
        c.axhline(20_000, color="green", linestyle="--", label="target 20,000/s")
        c.legend(fontsize=7)
    c.set_title("catch-up entries/s")
    memory = results.get("memory") or {}
    d.bar(list(memory), [m["peak_rss_mib"] for m in memory.values()])
    d.axhline(250, color="orange", linestyle="--", label="API target 250 MiB")
    d.axhline(400, color="red", linestyle="--", label="worker target 400 MiB")
    d.set_yscale("log")
    d.set_title("peak RSS MiB during the run")
    d.legend(fontsize=7)
    fig.suptitle(f"backbone benchmark {results.get('started_at', '')}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scale_out(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for apis in sorted({r["apis"] for r in rows}):
        mine = sorted((r for r in rows if r["apis"] == apis), key=lambda r: r["workers"])
        ax.plot(
            [r["workers"] for r in mine],
            [r["messages_per_s"] for r in mine],
            marker="o",
            label=f"{apis} API process(es)",
        )
    ax.set_xticks(sorted({r["workers"] for r in rows}))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("workers")
    ax.set_ylabel("messages/s")
    ax.set_title("end-to-end throughput by process count")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

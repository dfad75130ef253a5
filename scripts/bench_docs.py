#!/usr/bin/env python3
"""Regenerates the figures in docs/benchmarks.md from the benchmarks' JSON.

Each generated block sits between two markers naming its kind and JSON file
(relative to docs/):

    <!-- bench: media bench/compare-500.json -->
    ...replaced on every run...
    <!-- /bench -->

Kinds: `media` (summary with spread, then every run), `capacity` (a
`--ramp` report), `cdr` (`tollgate bench cdr --json`), `sip` (`tollgate
bench sip --out`), `sip-capacity` (`tollgate bench sip --capacity --out`), `archive` (`tollgate bench archive --json`). Every block starts with the stamp of the run that made
its JSON: commit, build profile, kernel, CPU, pinning. Prose outside the
blocks is left as written, so it must not repeat figures.

    scripts/bench_docs.py [docs/benchmarks.md]      # rewrite in place
    scripts/bench_docs.py --check                   # fail if out of date
"""

import json
import re
import sys
from pathlib import Path

BLOCK = re.compile(r"(<!-- bench: ([\w-]+) (\S+) -->\n)(.*?)(<!-- /bench -->)", re.S)


def stamp_line(stamp, extra=""):
    if not stamp:
        raise ValueError("the JSON has no stamp: rerun the benchmark with this code")
    commit = stamp.get("commit", "?")[:10]
    dirty = {True: "uncommitted changes", False: "clean"}.get(stamp.get("dirty"), "dirty state unknown")
    parts = [
        f"commit `{commit}` ({dirty})",
        stamp.get("profile", "?"),
        f"Linux {stamp.get('kernel', '?')}",
        f"{stamp.get('cpu_model', '?')}, {stamp.get('cores', '?')} cores",
        f"pinning: {stamp.get('pinning', 'none')}",
    ]
    return "*Measured at " + "; ".join(parts) + (f"; {extra}" if extra else "") + ".*\n\n"


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def spread(s, scale=1.0, digits=1, unit=""):
    if s is None:
        return "—"
    f = lambda v: f"{v * scale:,.{digits}f}"
    return f"{f(s['median'])}{unit} ({f(s['min'])}–{f(s['max'])})"


def media(r):
    out = stamp_line(r.get("stamp"), f"load average {r.get('load_average', '?')}")
    out += f"`{r.get('command', '')}`\n\n"
    rows = []
    for s in r["summary"]:
        ratio = s.get("cpu_per_packet_ratio")
        # The floor's packets keep their addresses: none is delivered.
        floor = s["system"].endswith("ceiling")
        rows.append([
            s["system"],
            f"{s['runs']} ({s['refused_runs']} refused)",
            spread(s["cpu_ns_per_packet"], 1e-3, 2, " µs"),
            "—" if ratio is None else f"{ratio:.2f}",
            "not delivered" if floor else spread(s["p99_us"], 1, 0, " µs"),
            "not delivered" if floor else spread(s["loss_pct"], 1, 3, " %"),
            f"{s['calls_per_core_at_this_cost']:,.0f}",
        ])
    out += table(["system", "runs", "relay CPU per packet, median (min–max)", "ratio",
                  "p99 latency", "loss", "calls per core at that cost"], rows)
    notes = r.get("notes") or []
    if notes:
        out += "\nThe run's notes:\n\n" + "".join(f"- {n}\n" for n in notes)
    out += "\nEvery run:\n\n"
    rows = []
    for run in r["runs"]:
        t, cc = run["traffic"], run.get("cross_check") or {}
        cpu = run.get("cpu_ns_per_packet")
        rows.append([
            run["system"], run["calls"], f"{t['received']:,} of {t['sent']:,}",
            f"{run['loss_pct']:.3f} %", t["latency_us"]["p50"], t["latency_us"]["p99"],
            "—" if cpu is None else f"{cpu / 1000:.2f} µs",
            "—" if not cc else f"{cc['cores_busy_pct']:.0f} % / {cc['uncounted_pct']:.0f} %",
            "; ".join(run.get("refused") or []) or "stands",
        ])
    out += table(["system", "calls", "received", "loss", "p50 µs", "p99 µs", "CPU/packet",
                  "relay core busy / uncounted", "accounting"], rows)
    return out


def capacity(r):
    out = stamp_line(r.get("stamp"), f"load average {r.get('load_average', '?')}")
    out += f"`{r.get('command', '')}`\n\n"
    rows = [[c["system"], f"{c['calls']:,}", "; ".join(c.get("stopped") or []) or "—"]
            for c in r["capacity"]]
    return out + table(["system", "most calls within 0.1 % loss and 1 ms p99", "search stopped by"], rows)


def cdr(r):
    pg = r.get("postgres", {})
    fs = r.get("spool_fs", {})
    extra = (f"PostgreSQL fsync={pg.get('fsync', '?')}, synchronous_commit="
             f"{pg.get('synchronous_commit', '?')} (PostgreSQL {pg.get('server_version', '?')}); spool on "
             f"{fs.get('mount_type') or fs.get('kind', '?')} ({fs.get('mount_options', '?')})")
    out = stamp_line(r.get("stamp"), extra)
    out += (f"{r['records']:,} CDRs per round ({r['baseline_records']:,} for the one-per-CDR baseline), "
            f"{r['rounds']} rounds, {r['in_flight']} appends in flight, sink batches of {r['batch']}.\n\n")
    rows = [[m["what"], spread(m, 1, 0)] for m in r["measures"]]
    out += table(["measure", "CDRs/s, median (min–max)"], rows)
    q = r["ratios"]
    out += (f"\n- A synced append (group commit) reaches {q['append_synced_over_unsynced_throughput']:.2f}x "
            f"the appends per second of an unsynced one: it costs {q['append_synced_over_unsynced_cost']:.2f}x.\n"
            f"- The batched sink is {q['sink_over_one_per_cdr']:.1f}x one INSERT transaction per CDR, and "
            f"{q['sink_over_floor']:.2f}x the database's own floor (COPY of the same rows).\n")
    for n in r.get("notes") or []:
        out += f"- {n}\n"
    return out


def sip(r):
    out = stamp_line(r.get("stamp"))
    out += (f"{r['cps']} cps offered for {r['duration_s']} s, {r['runs_per_system']} runs per system. "
            f"Setup latency: {r.get('setup_latency', '')}\n\n")
    rows = []
    for s in r["systems"]:
        rows.append([
            s["system"], spread(s["cps_achieved"], 1, 1),
            sum(x["failed"] for x in s["runs"]), sum(x["retransmissions"] for x in s["runs"]),
            spread(s["setup_us_p50"], 1, 0, " µs"), spread(s["setup_us_p99"], 1, 0, " µs"),
            spread(s["cpu_ms_per_call"], 1, 2, " ms"),
        ])
    out += table(["system", "achieved cps", "failed", "retrans", "setup p50", "setup p99",
                  "CPU per call, median (min–max)"], rows)
    if len(r["systems"]) == 2:
        a, b = (s["cpu_ms_per_call"]["median"] for s in r["systems"])
        if a > 0:
            out += (f"\n{r['systems'][0]['system']} spends {a / b:.2f}x the CPU per call of "
                    f"{r['systems'][1]['system']} (medians).\n")
    out += "\nWhat was counted: " + "; ".join(f"{s['system']}: {s['counted']}" for s in r["systems"]) + "\n"
    return out


def sip_capacity(r):
    out = stamp_line(r.get("stamp"))
    out += (f"Probes of {r['duration_s']} s each, up to {r['max_cps']:,} cps; a probe passes with "
            f"{r['criteria']}.\n\n")
    rows = []
    for c in r["capacity"]:
        for p in c["probes"]:
            run = p.get("run")
            verdict = "pass" if p["passed"] else "; ".join(p["failed_because"])
            if run is None:
                rows.append([c["system"], f"{p['cps']:,}", "—", "—", "—", "—", verdict])
                continue
            rows.append([c["system"], f"{p['cps']:,}", f"{run['cps_achieved']:,.1f}",
                         run["failed"], f"{run['setup_us_p99']:,.0f} µs",
                         f"{run['cpu_ms_per_call']:.2f} ms", verdict])
    out += table(["system", "offered cps", "achieved", "failed", "setup p99", "CPU per call", "probe"], rows)
    out += "\n" + table(["system", "capacity (highest passing rate)"],
                        [[c["system"], f"{c['cps']:,} cps"] for c in r["capacity"]])
    if len(r["capacity"]) == 2 and r["capacity"][1]["cps"] > 0:
        a, b = r["capacity"]
        out += f"\n{a['system']} carries {a['cps'] / b['cps']:.2f}x the call rate of {b['system']}.\n"
    return out


def archive(r):
    out = stamp_line(r.get("stamp"), f"S3 endpoint {r.get('endpoint', '?')}")
    obj = r["rounds"][0]
    out += (f"{r['recordings']} recordings of {r['secs']} s (two legs) per round, {len(r['rounds'])} rounds; "
            f"{obj['objects']} objects, {obj['bytes'] / 1e6:,.1f} MB stored per round.\n\n")
    n = r["concurrency"]
    rows = [[f"archived, {n} recordings at once: rendered, sealed, uploaded, row written",
             spread(r["archive_mb_s"])],
            ["archived, one recording at a time", spread(r["sequential_mb_s"])],
            ["raw PUT of objects of the same sizes, one at a time (floor)", spread(r["raw_put_mb_s"])]]
    out += table(["measure", "MB/s of stored objects, median (min–max)"], rows)
    gain = r["archive_mb_s"]["median"] / r["sequential_mb_s"]["median"]
    out += (f"\n- Archiving {n} at once reaches {r['archive_over_raw_put']:.2f}x the store's raw PUT rate, "
            f"{gain:.2f}x the rate of one at a time.\n")
    return out


KINDS = {"media": media, "capacity": capacity, "cdr": cdr, "sip": sip, "sip-capacity": sip_capacity,
         "archive": archive}


def render(doc_path):
    doc = doc_path.read_text()

    def one(m):
        head, kind, rel = m.group(1), m.group(2), m.group(3)
        if kind not in KINDS:
            raise ValueError(f"{doc_path}: unknown block kind {kind!r} (known: {', '.join(KINDS)})")
        path = doc_path.parent / rel
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from e
        try:
            body = KINDS[kind](data)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a `{kind}` report of this code ({e!r})") from e
        return head + "\n" + body + "\n" + m.group(5)

    return doc, BLOCK.sub(one, doc)


def main(argv):
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    doc_path = Path(paths[0] if paths else Path(__file__).parent.parent / "docs" / "benchmarks.md")
    try:
        old, new = render(doc_path)
    except ValueError as e:
        print(f"bench_docs: {e}", file=sys.stderr)
        return 1
    if check:
        if old != new:
            print(f"bench_docs: {doc_path} is not what its JSON gives: run scripts/bench_docs.py", file=sys.stderr)
            return 1
        return 0
    doc_path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Write docs/benchmarks.md and docs/propagation.png from .bench-cache/results/*.json.

`python -m bench.report` rewrites both from the last run without running anything. The hand-written
findings (profiles, fixes, before/after) live in bench/findings.md and are included as they are."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, read_result

DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "propagation.png"
FINDINGS = ROOT / "bench" / "findings.md"
TOOL_ORDER = ("dagsync once", "dagsync daemon", "dagsync daemon (event)", "dagsync daemon (full)", "aws s3 sync",
              "S3DagBundle")


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def spread(d: dict[str, float], scale: float = 1.0, unit: str = "") -> str:
    if d["n"] == 1:
        return f"{d['median'] * scale:,.0f}{unit}"
    return f"{d['median'] * scale:,.0f}{unit} ({d['min'] * scale:,.0f}-{d['max'] * scale:,.0f})"


def seconds_spread(d: dict[str, float]) -> str:
    if d["n"] == 1:
        return ms(d["median"])
    return f"{ms(d['median'])} ({ms(d['min'])}-{ms(d['max'])})"


def size(n: float) -> str:
    for unit, div in (("MB", 1e6), ("KB", 1e3)):
        if n >= div:
            return f"{n / div:,.1f} {unit}"
    return f"{n:,.0f} B"


def plot(prop: dict[str, Any], fan: dict[str, Any] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = [x * 1000 for x in prop["latencies"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.hist(lat, bins=40, color="#4c72b0")
    for label, key, style in (("p50", "median", "-"), ("p95", "p95", "--"), ("p99", "p99", ":")):
        value = prop["all_hosts_seconds"][key] * 1000
        left.axvline(value, color="black", linestyle=style, linewidth=1, label=f"{label} {value:.0f} ms")
    left.set_xlabel("manifest write -> symlink flip (ms)")
    left.set_ylabel("changes")
    left.set_title(f"1 host, {prop['changes']} changes")
    left.legend()

    def cdf(ax: Any, values: list[float], label: str) -> None:
        xs = sorted(v * 1000 for v in values)
        ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))], label=label)

    cdf(right, prop["latencies"], "1 host")
    if fan:
        cdf(right, fan["latencies"], f"all of {fan['agents']} hosts")
        cdf(right, fan["per_host"], f"each of {fan['agents']} hosts")
    right.axvline(250, color="grey", linestyle="--", linewidth=1, label="p50 target 250 ms")
    right.set_xlabel("ms")
    right.set_ylabel("fraction of changes")
    right.set_title("cumulative distribution")
    right.grid(alpha=0.3)
    right.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)


class Doc:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.targets: list[tuple[str, str, str, bool | None]] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def target(self, what: str, goal: str, got: str, met: bool | None) -> None:
        self.targets.append((what, goal, got, met))


def _propagation(doc: Doc, prop: dict[str, Any], fan: dict[str, Any] | None, cmds: dict[str, str]) -> None:
    s = prop["all_hosts_seconds"]
    doc.target("propagation p50", "<= 250 ms", ms(s["median"]), s["median"] <= 0.25)
    doc.target("propagation p99", "<= 1 s", ms(s["p99"]), s["p99"] <= 1.0)
    doc.add("## Propagation: manifest write -> project flipped on a host", "",
            f"`{cmds.get('propagation', '')}`", "",
            "The stack runs in the benchmark process from the same pieces as `dagsync local up` "
            "(`dagsync.local.stack.provision` from `Topology`, and the `EventSourceRunner` that long-polls the "
            "manifest-events queue and calls the real validator Lambda handler), on a moto server wrapped in a "
            "request-counting WSGI middleware. The agent is a real `dagsync-agent run` process with its own "
            "SNS-subscribed SQS queue. Each change is `promote` of a new version (a new archive to download); "
            "the clock starts when the manifest PUT has returned and stops when the host's symlink points at "
            "the new tree (polled every millisecond). Changes are spaced 50-250 ms apart at random.", "",
            "| changes | p50 | p95 | p99 | max | min |", "| --- | --- | --- | --- | --- | --- |",
            f"| {prop['changes']} | {ms(s['median'])} | {ms(s['p95'])} | {ms(s['p99'])} | {ms(s['max'])} "
            f"| {ms(s['min'])} |", "", "![propagation latency](propagation.png)", "",
            "Requests per change, counted at the server (one host):", "",
            "| component | requests per change | bytes per change |", "| --- | --- | --- |")
    for who, ops in prop["requests_per_change"].items():
        text = ", ".join(f"{op} {n:.2f}".rstrip("0").rstrip(".") for op, n in ops.items())
        doc.add(f"| {who} | {text} | {size(prop['bytes_per_change'][who])} |")
    doc.add("")
    if fan:
        a, h = fan["all_hosts_seconds"], fan["per_host_seconds"]
        got = f"p50 {ms(a['median'])}, p99 {ms(a['p99'])}"
        doc.target(f"fan-out to {fan['agents']} hosts", "(no target)", got, None)
        doc.add(f"## Fan-out: {fan['agents']} agents on one machine", "", f"`{cmds.get('fanout', '')}`", "",
                f"The same stack with {fan['agents']} real agents, each on its own queue (SNS raw delivery), "
                "all on this 2-core machine. \"All hosts\" is the time until the last host has flipped.", "",
                "| changes | all hosts p50 | all hosts p99 | all hosts max | each host p50 | each host p99 |",
                "| --- | --- | --- | --- | --- | --- |",
                f"| {fan['changes']} | {ms(a['median'])} | {ms(a['p99'])} | {ms(a['max'])} | {ms(h['median'])} "
                f"| {ms(h['p99'])} |", "")


def _op(name: str) -> str:
    """`s3 GetObject` -> `GetObject`; a GET on the bucket with list parameters is ListObjects (v1)."""
    name = name.removeprefix("s3 ")
    return "ListObjects" if name.startswith("GetBucket") and ("prefix" in name or "marker" in name) else name


def _row(name: str, d: dict[str, Any]) -> str:
    extra = ""
    if "process_seconds" in d:
        extra = (f"; as a fresh process {seconds_spread(d['process_seconds'])}, of which importing Airflow "
                 f"{ms(d['import_seconds']['median'])}")
    merged: dict[str, int] = {}
    for k, v in d["by_operation"].items():
        merged[_op(k)] = merged.get(_op(k), 0) + v
    ops = ", ".join(f"{k} {v}" for k, v in merged.items())
    return (f"| {name} | {seconds_spread(d['seconds'])} | {spread(d['requests'])} | "
            f"{size(d['bytes_moved']['median'])} | {ops}{extra} |")


def _side_by_side(doc: Doc, sbs: dict[str, Any], cmds: dict[str, str]) -> None:
    n = sbs["projects"]
    doc.add(f"## Side by side: {n:,} projects x {sbs['files_per_project']} DAG files", "",
            f"`{cmds.get('side_by_side', '')}`", "",
            f"One moto server, one bucket: {n:,} dagsync archives ({size(sbs['archive_bytes'])}) with their catalogs, "
            f"and the same {n * sbs['files_per_project']:,} files as plain objects under `plain/` "
            f"({size(sbs['plain_bytes'])}). Each tool signs with its own access key; the server counts its "
            f"requests and the bytes of request and response bodies. {sbs['repeats']} repeats, each into fresh "
            "folders; the figures are the median with (min-max).", "",
            "- **dagsync once**: `dagsync-agent once`, a fresh process (init container, cron). Includes "
            "Python start-up and imports (about 0.4 s), and its first cycle is a deep check: the sha256 of "
            "every file on disk (the daemon does that once every ten reconciles), hence its no-op time.",
            "- **dagsync daemon**: the daemon's own sync cycle (`dagsync.agent.sync.Syncer`, host status included) "
            "in a long-running process (`bench/agent_probe.py`). *event* is what a change message triggers "
            "(conditional GET of release.json); *full* is the timer's reconcile, which also stat-checks "
            "every tree on disk.",
            "- **aws s3 sync**: `aws s3 sync s3://bucket/plain/ DIR --delete --exact-timestamps`, a fresh "
            "process. `--exact-timestamps` is needed for correctness: without it, a changed file of the same "
            "size is never downloaded (awscli's download rule skips same-size files unless the local copy is "
            "newer); the first version of this benchmark caught exactly that.",
            "- **S3DagBundle**: `initialize()` (cold) and `refresh()` of "
            "`airflow.providers.amazon.aws.bundles.s3.S3DagBundle` in a long-running process, as the DAG "
            "processor calls them; the connection is `AIRFLOW_CONN_BENCH_S3` with `extra.endpoint_url`.", "")
    titles = {"cold": "Cold sync (empty folder)", "noop": "No-op sync (nothing changed)",
              "change": f"One project changed among {n:,} (every file of it)"}
    for phase in ("cold", "noop", "change"):
        rows = sbs["summary"].get(phase, {})
        doc.add(f"### {titles[phase]}", "", "| tool | wall time | S3 requests | bytes moved | requests by kind |",
                "| --- | --- | --- | --- | --- |")
        for name in TOOL_ORDER:
            if name in rows:
                doc.add(_row(name, rows[name]))
        doc.add("")
    _side_by_side_targets(doc, sbs["summary"], n)


def _side_by_side_targets(doc: Doc, summary: dict[str, Any], n: int) -> None:
    cold = summary.get("cold", {})
    noop = summary.get("noop", {})
    change = summary.get("change", {})
    if "dagsync daemon (full)" in noop:
        for kind in ("event", "full"):
            d = noop[f"dagsync daemon ({kind})"]
            doc.target(f"no-op, daemon {kind} cycle", "<= 2 requests, <= 50 ms",
                       f"{d['requests']['median']:.0f} requests, {ms(d['seconds']['median'])}",
                       d["requests"]["max"] <= 2 and d["seconds"]["median"] <= 0.05)
    if "dagsync once" in noop:
        d = noop["dagsync once"]
        doc.target("no-op, `dagsync-agent once` (a fresh process; for reference)", "(the daemon's no-op above)",
                   f"{d['requests']['median']:.0f} requests, {ms(d['seconds']['median'])}", None)
    for mine in ("dagsync once", "dagsync daemon"):
        if mine not in cold:
            continue
        t = cold[mine]["seconds"]["median"]
        for other in ("aws s3 sync", "S3DagBundle"):
            if other in cold:
                ratio = cold[other]["seconds"]["median"] / t
                doc.target(f"cold sync, {mine} vs {other}", ">= 3x faster", f"{ratio:.1f}x", ratio >= 3)
    if "dagsync daemon" in change:
        d = change["dagsync daemon"]
        gets = d["by_operation"].get("s3 GetObject", 0)  # release.json, its changed shards, the one archive
        doc.target(f"one change among {n:,}: what the daemon reads (the conditional-read path)", "1 archive",
                   f"{gets} GETs (release.json, its changed shards, the archive), "
                   f"{size(d['bytes_moved']['median'])} in all", None)


def _validator(doc: Doc, val: dict[str, Any], command: str) -> None:
    doc.add(f"## Validator: {val['projects']:,}-project manifest", "", f"`{command}`", "",
            "`bench/validator_scale.py` (written by the validator's owner; the suite calls it) runs the real "
            "`Validator` against moto in-process (no HTTP) and counts S3 requests with a botocore "
            "`before-send` hook.", "", "| case | outcome | requests | kinds | time |",
            "| --- | --- | --- | --- | --- |")
    for r in val["rows"]:
        doc.add(f"| {r['label']} | {r['status']} | {r['requests']} | {r['operations']} | {r['ms']:,.1f} ms |")
    tail = [line for line in val["stdout"].splitlines() if line.startswith("release.json")]
    doc.add("", *(f"{t}." for t in tail), "")
    one = next((r for r in val["rows"] if r["label"].startswith("one of")), None)
    if one:
        doc.target(f"validator, one change among {val['projects']:,}", "(no target)",
                   f"{one['requests']} requests, {one['ms']:.0f} ms", None)


def _parse_gate(doc: Doc, pg: dict[str, Any], cmds: dict[str, str]) -> None:
    over, startup = pg["over_seconds"], pg["startup_seconds"]
    own = pg["over_minus_startup_seconds"]
    doc.target("publish with Airflow's DagBag, over today's publish + the files' parse time", "<= 1 s",
               seconds_spread(over), over["median"] <= 1.0)
    doc.target("the same, counting the parse child's import of Airflow as parse time", "<= 1 s",
               seconds_spread(own), own["median"] <= 1.0)
    doc.add(f"## Parse gate: publishing with Airflow {pg['airflow_version']}'s DagBag", "",
            f"`{cmds.get('parse_gate', 'python -m bench.parse_gate')}`", "",
            f"`publish()` of one project of {pg['files']} DAG files (about 3 KB each) against moto in-process, "
            "alternately with the ast checks only (today's publish) and with `--airflow-python`, each run a new "
            f"version of the same content; {pg['repeats']} runs each after one warm-up. The parse time is the sum "
            "of the files' parse times that the catalog records. The parse child starts before the archive is "
            "built; the time until it has imported Airflow is reported on its own line.", "",
            "| | median (range) |", "| --- | --- |",
            f"| today's publish (ast only) | {seconds_spread(pg['ast_seconds'])} |",
            f"| publish with Airflow | {seconds_spread(pg['airflow_seconds'])} |",
            f"| parse time (the files') | {seconds_spread(pg['parse_seconds'])} |",
            f"| with Airflow - today's - parse time | {seconds_spread(over)} |",
            f"| of which the parse child importing Airflow | {seconds_spread(startup)} |",
            f"| of which the rest (scratch folder, forks, protocol) | {seconds_spread(own)} |",
            f"| for comparison: `python -c 'import airflow...'` to its exit | {seconds_spread(pg['import_seconds'])} |",
            "")


def _verification(doc: Doc, ver: dict[str, Any], command: str) -> None:
    """Section for bench/verify_release.py: what checking a signed release costs a host."""
    rows = ver["releases"]
    worst = max(r["verify"]["median_ms"] for r in rows.values())
    doc.target(f"verify a {ver['projects']:,}-project release on a host", f"<= {ver['target_ms']:g} ms",
               f"{worst:.2f} ms at most (median)", worst <= ver["target_ms"])
    doc.add(f"## Verifying a signed release: {ver['projects']:,} projects", "", f"`{command}`", "",
            "`bench/verify_release.py` builds the release in memory with `dagsync.core.releases` (the validator's "
            "code; 256 shards at most), signs its root with an ECDSA P-256 key as KMS does, and times what a host "
            "adds to fetching it: one signature check of the root (`TrustedKeys`, on the stored bytes) and the "
            "sha256 of every shard. The first release of a bucket (or of a new chain) lists every project in "
            "`changes`; the next one, one change.", "",
            "| release | root | shards | signature | shards' sha256 | verify (both) | parsing the shards (context) |",
            "| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        v = r["verify"]
        doc.add(f"| {name} ({r['changes']:,} in `changes`) | {size(r['root_bytes'])} | {r['shards']} "
                f"({size(r['shard_bytes'])}) | {r['signature']['median_ms']:.2f} ms | "
                f"{r['shard_sha256']['median_ms']:.2f} ms | {v['median_ms']:.2f} ms ({v['min_ms']:.2f}-"
                f"{v['max_ms']:.2f}) | {r['parse_shards']['median_ms']:.0f} ms |")
    doc.add("")


def _footprint(doc: Doc, foot: dict[str, Any]) -> None:
    mb = 1 / 2**20
    peak = max(foot["cold_peak_rss_bytes"], foot["idle_rss_bytes"]) * mb
    doc.target("agent RSS", "<= 80 MB", f"{peak:.1f} MiB at most (cold sync and idle, {foot['projects']:,} projects)",
               peak <= 80)
    doc.add("## Agent footprint", "",
            f"The real `dagsync-agent run` daemon (with an SQS queue, 20 s long-polls) cold-syncs "
            f"{foot['projects']:,} projects into an empty folder, runs a full reconcile (SIGHUP: the first one watches "
            "every tree), then idles; sampled with psutil "
            "(RSS every 20 ms during the sync, every 200 ms idle).", "",
            "| | RSS | CPU |", "| --- | --- | --- |",
            f"| cold sync ({ms(foot['cold_seconds'])} from process start to the last link) | "
            f"{foot['cold_peak_rss_bytes'] * mb:.1f} MiB peak | {foot['cold_cpu_seconds']:.1f} s CPU |",
            f"| idle ({foot['idle_seconds']:.0f} s) | {foot['idle_rss_bytes'] * mb:.1f} MiB | "
            f"{foot['idle_cpu_percent']:.2f} % of one core ({foot['idle_cpu_seconds']:.2f} s) |", "")


def _median_seconds(rows: list[dict[str, Any]]) -> float:
    return float(sorted(a["seconds"] for a in rows)[len(rows) // 2])


def _agent_scale(doc: Doc, res: dict[str, Any], command: str) -> None:
    """bench/agent_scale.py: the agent alone at each size (the issue's 1,000 and 10,000 projects)."""
    doc.add("## The agent at 1,000 and 10,000 projects", "", f"`{command}`", "",
            "`bench/agent_scale.py`: per size, its own moto server (requests and bytes counted at the server, the "
            "agent's own only) and the daemon's Syncer in its own process (`bench/agent_probe.py`). *full scan*: a "
            "full reconcile that reads the volume (as after a change or drift; median of "
            f"{res['scan_repeats']}); *quiet*: the minute's full reconcile when the watch saw nothing change (median "
            f"of {res['quiet_repeats']}); *delta*: one changed project applied from its change event; *event*: one "
            "changed project through the conditional read of release.json. Both in the steady state of a daemon "
            "that keeps its 100 release views: the probe keeps one besides the current one (`BENCH_KEEP_VIEWS=1`, "
            "after a first change), so each new view is repaired from the oldest. Memory: the real `dagsync-agent run` "
            "daemon's cold sync and idle, sampled with psutil.", "",
            "| projects | cold sync | full scan no-op | quiet no-op | one change: delta | one change: read "
            "| RSS cold peak / idle |", "| --- | --- | --- | --- | --- | --- | --- |")
    mb = 1 / 2**20
    for r in res["sizes"]:
        f = r["footprint"]
        doc.add(f"| {r['projects']:,} | {r['cold']['seconds']:.1f} s, {r['cold']['requests']:,} requests | "
                f"{ms(_median_seconds(r['scan']))} | "
                f"{ms(_median_seconds(r['quiet']))}, {r['quiet'][-1]['requests']} request | "
                f"{ms(r['delta']['seconds'])}, {r['delta']['requests']} requests, {size(r['delta']['bytes'])} | "
                f"{ms(r['event']['seconds'])}, {r['event']['requests']} requests, {size(r['event']['bytes'])} | "
                f"{f['cold_peak_rss_bytes'] * mb:.1f} / {f['idle_rss_bytes'] * mb:.1f} MiB |")
    doc.add("", "Requests of one change (delta, then read), by operation: " + "; ".join(
        f"{r['projects']:,}: {r['delta']['by_operation']} / {r['event']['by_operation']}" for r in res["sizes"]), "")
    for r in res["sizes"]:
        n, f = r["projects"], r["footprint"]
        quiet, scan = _median_seconds(r["quiet"]), _median_seconds(r["scan"])
        limit = 0.05 if n <= 1000 else 0.3
        doc.target(f"full no-op reconcile, {n:,} projects", f"<= {limit * 1000:.0f} ms",
                   f"{ms(quiet)} quiet (full scan: {ms(scan)})", quiet <= limit)
        doc.target(f"one change at {n:,}: metadata a host moves", "<= 20 KB + the archive",
                   f"the {size(r['delta_event_bytes'])} event; S3: {r['delta']['requests']} requests, "
                   f"{size(r['delta']['bytes'])} with the archive", None)
        peak = max(f["cold_peak_rss_bytes"], f["idle_rss_bytes"]) * mb
        doc.target(f"agent RSS, {n:,} projects", "<= 80 MiB", f"{peak:.1f} MiB (cold sync and idle)", peak <= 80)
    _peers(doc, res)


PEER_PHASES = (("cold", "cold sync", "cold"), ("noop", "no-op", "quiet"), ("change", "one change", "delta"))


def _peers(doc: Doc, res: dict[str, Any]) -> None:
    """aws s3 sync and S3DagBundle, measured at one size of the same run; the larger sizes extrapolated from it."""
    measured = next((r for r in res["sizes"] if r.get("peers")), None)
    if measured is None:
        return
    n0 = measured["projects"]
    doc.add(f"Side by side at {n0:,} projects (measured in this run: `aws s3 sync` of the plain layout, a fresh "
            "process; S3DagBundle's initialize/refresh in a long-running process), and at each larger size with the "
            f"peers **extrapolated linearly** from {n0:,} (both list and fetch every file, so their cost grows at "
            "least linearly), dagsync measured:", "",
            "| projects | | dagsync | aws s3 sync | S3DagBundle |", "| --- | --- | --- | --- | --- |")
    for r in res["sizes"]:
        factor = r["projects"] / n0
        mark = "" if r is measured else " (extrapolated)"
        for phase, label, ours in PEER_PHASES:
            peers = measured["peers"].get(phase, {})
            mine = _median_seconds(r[ours]) if isinstance(r[ours], list) else r[ours]["seconds"]
            cells = [f"{ms(peers[t]['seconds'] * factor)}{mark}, {peers[t]['requests'] * factor:,.0f} requests"
                     if t in peers else "-" for t in ("aws s3 sync", "S3DagBundle")]
            doc.add(f"| {r['projects']:,} | {label} | {ms(mine)} | {cells[0]} | {cells[1]} |")
            if phase == "cold" and r is not measured:
                for tool in peers:
                    ratio = peers[tool]["seconds"] * factor / mine
                    doc.target(f"cold sync of {r['projects']:,} projects, dagsync daemon vs {tool} (the peer "
                               f"extrapolated from {n0:,})", ">= 3x faster", f"{ratio:.1f}x", ratio >= 3)
    doc.add("", "dagsync's rows: the daemon's Syncer (*cold*: full on an empty folder; *no-op*: the quiet full "
            "reconcile; *one change*: the delta from its change event).", "")


def _propagation_scale(doc: Doc, res: dict[str, Any], command: str) -> None:
    rows = res["sizes"]
    doc.add("## Propagation at scale: one change among N projects", "", f"`{command}`", "",
            "`bench/propagation.py --projects`: the same stack and the same 10 changing projects as above, with the "
            "other projects loaded into the bucket first, released by the stack's own validator and cold-synced by "
            "the agent before the clock starts. "
            f"The agents keep {rows[0]['keep_views']} old release view(s) (`--keep-views`): the steady state of a "
            "host that has applied more releases than it keeps, where each new view is repaired from the oldest.", "",
            "| projects | changes | p50 | p95 | p99 | max | agent requests per change "
            "| validator requests per change |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        s = r["all_hosts_seconds"]
        per = r["requests_per_change"]
        doc.add(f"| {r['projects']:,} | {r['changes']} | {ms(s['median'])} | {ms(s['p95'])} | {ms(s['p99'])} | "
                f"{ms(s['max'])} | {sum(per['agent'].values()):.1f} | {sum(per['validator'].values()):.1f} |")
    doc.add("")
    small, big = rows[0], rows[-1]
    if big is not small:
        ratio = big["all_hosts_seconds"]["median"] / small["all_hosts_seconds"]["median"]
        doc.target(f"propagation p50 at {big['projects']:,} projects vs {small['projects']:,}", "within 1.5x",
                   f"{ms(big['all_hosts_seconds']['median'])} vs {ms(small['all_hosts_seconds']['median'])}: "
                   f"{ratio:.2f}x", ratio <= 1.5)


def _soak(doc: Doc, res: dict[str, Any], command: str) -> None:
    mb = 1 / 2**20
    extrapolated = res["extrapolated_10000_changes_bytes"] * mb
    doc.add("## Soak: memory over many changes", "", f"`{command}`", "",
            f"{res['changes']:,} changes over {res['projects']} projects, each applied from its change event, RSS "
            f"after each (bench/soak.py): {res['rss_bytes'][0] * mb:.1f} -> {res['rss_bytes'][-1] * mb:.1f} MiB, "
            f"growth {res['growth_bytes'] * mb:.2f} MiB (last tenth's median minus the second tenth's), "
            f"{res['growth_per_change_bytes']:,.0f} B per change: {extrapolated:.1f} MiB over 10,000 changes, "
            "extrapolated, not measured.", "")
    doc.target(f"RSS growth over 10,000 changes (extrapolated from {res['changes']:,})", "<= 5 MiB",
               f"{extrapolated:.1f} MiB", extrapolated <= 5)


AIRFLOW_KINDS = {"new": "new project: DAG registered", "changed": "changed project: new serialized DAG",
                 "rolled back": "rolled back (to a tree extracted earlier): serialized DAG", "retired":
                 "retired project: DAG stale"}


def _airflow_e2e(doc: Doc, res: dict[str, Any], cmds: dict[str, str]) -> None:
    wait = res["classic_wait"]

    def sec(v: float | None) -> str:
        return f"> {wait:.0f} s" if v is None else f"{v:,.2f} s" if v < 10 else f"{v:,.0f} s"

    def cell(s: dict[str, Any]) -> str:
        return f"{sec(s['p50'])} / {sec(s['max'])}" + (f" ({s['missed']} of {s['n']} not within {wait:.0f} s)"
                                                        if s["missed"] else "")

    for kind in AIRFLOW_KINDS:
        b = res["kinds"][kind]["bundle"]
        ok = b["p50"] is not None and b["max"] is not None and b["p50"] <= 2 and b["max"] <= 5
        doc.target(f"publish -> Airflow has it, DagsyncBundle, {kind}", "p50 <= 2 s, max <= 5 s",
                   f"p50 {sec(b['p50'])}, max {sec(b['max'])}", ok)
    cpu = res["cpu"]
    settings = ", ".join(f"`{k}={v}`" for k, v in res["settings"]["bundle"].items() if k.startswith("AIRFLOW__"))
    doc.add("## Airflow: publish -> the DAG processor's metadata DB", "", f"`{cmds.get('airflow_e2e', '')}`", "",
            "A real Airflow 3.3.2 `airflow dag-processor` (its own venv under `.cache/`, sqlite DB from "
            "`airflow db migrate`) reads the folder a real `dagsync-agent run` keeps on `dagsync local up`; two of "
            "them, side by side on the same host folder in the same run: **classic** is Airflow's default "
            "`dags-folder` bundle with every setting at its default; **DagsyncBundle** is the bundle with "
            f"{settings} (docs/airflow.md). Each change is on its own project and is timed from the start of the "
            "publisher call (`publish --promote`, `rollback`, `retire`) until the host folder has it and until "
            f"each metadata DB shows it (polled every 20 ms). {res['changes']} changes of each kind, one of each "
            f"per {res['spacing']:.0f} s slot; each change is given {wait:.0f} s to show in the classic setup.", "",
            "| change (what the DB shows) | host folder flipped | DagsyncBundle | classic dags-folder |",
            "| --- | --- | --- | --- |")
    for kind, label in AIRFLOW_KINDS.items():
        k = res["kinds"][kind]
        doc.add(f"| {label} | {cell(k['host'])} | {cell(k['bundle'])} | {cell(k['classic'])} |")
    doc.add("", "Each cell is p50 / max. The DAG processors' CPU over the measured window (their parsing children "
            "included):", "",
            "| setup | CPU seconds | wall seconds | % of one core |", "| --- | --- | --- | --- |",
            *(f"| {side} | {c['cpu_seconds']:.1f} | {c['wall_seconds']:.0f} | {c['percent_of_a_core']:.1f} % |"
              for side, c in cpu.items()), "")


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else "met" if ok else "**missed**"


def _separate_runs(run: dict[str, Any]) -> str:
    """Results on disk that this run did not produce (a scenario run on its own) are named, not passed off."""
    names = sorted(p.stem for p in RESULTS.glob("*.json") if p.stem != "run" and p.stem not in run.get("durations", {}))
    return f" Except: {', '.join(names)}, which come from separate runs of their own commands." if names else ""


def write() -> Path:
    run = read_result("run") or {}
    prop, fan = read_result("propagation"), read_result("fanout")
    sbs, val = read_result("side_by_side"), read_result("validator")
    ver = read_result("verify_release")
    cmds: dict[str, str] = run.get("commands", {})
    doc = Doc()
    if prop:
        plot(prop, fan)
        _propagation(doc, prop, fan, cmds)
    if val:
        _validator(doc, val, cmds.get("validator", val["command"]))
    for n in run.get("sizes", {}).get("scale", []):
        more = read_result(f"validator_{n}")
        if more and (val is None or n != val["projects"]):
            _validator(doc, more, cmds.get(f"validator_{n}", more["command"]))
    if ver:
        _verification(doc, ver, cmds.get("verify_release", "python -m bench.verify_release"))
    if sbs:
        _side_by_side(doc, sbs, cmds)
        _footprint(doc, sbs["footprint"])
    agent_scale = read_result("agent_scale")
    if agent_scale:
        _agent_scale(doc, agent_scale, cmds.get("agent_scale", "python -m bench.agent_scale"))
    scale = read_result("propagation_scale")
    if scale:
        _propagation_scale(doc, scale, cmds.get("propagation_scale", "python -m bench.propagation --projects ..."))
    soak = read_result("soak")
    if soak:
        _soak(doc, soak, cmds.get("soak", "python -m bench.soak"))
    parse_gate = read_result("parse_gate")
    if parse_gate:
        _parse_gate(doc, parse_gate, cmds)
    airflow = read_result("airflow_e2e")
    if airflow:
        _airflow_e2e(doc, airflow, cmds)
    m = run.get("machine", {})
    sizes = run.get("sizes", {})
    head = [
        "# Benchmarks", "",
        f"Written by `make {run.get('make_target', 'bench')}` (`python -m bench.suite"
        f"{' --quick' if sizes.get('mode') == 'quick' else ''}`) on {time.strftime('%Y-%m-%d')}; the whole run "
        f"took {run.get('total_seconds', 0) / 60:.1f} minutes. `make bench-quick` runs the same suite at small "
        "sizes. Every figure below comes from that one run, on the machine below, against moto on 127.0.0.1. "
        "moto answers an S3 request in about 5 ms of Python, so absolute times are moto's more than S3's; "
        "the comparisons hold because every tool talks to the same server in the same run. Tests never time "
        "anything; this is where speed is judged." + _separate_runs(run), "",
        "| machine | |", "| --- | --- |",
        f"| cores | {m.get('cores')} ({m.get('cpu')}) |", f"| memory | {m.get('memory_gib')} GiB |",
        f"| kernel / Python | {m.get('kernel')} / {m.get('python')} |",
        f"| dagsync, boto3, moto | {m.get('dagsync')}, {m.get('boto3')}, {m.get('moto')} |",
        f"| awscli (own venv) | {m.get('awscli')} |",
        f"| apache-airflow, providers-amazon (own venv) | {m.get('apache-airflow')}, "
        f"{m.get('apache-airflow-providers-amazon')} (boto3 {m.get('airflow boto3')}) |",
        f"| sizes | {sizes.get('projects')} projects, {sizes.get('changes')} changes, {sizes.get('agents')} "
        f"agents for fan-out, {sizes.get('repeats')} repeats |", "",
        "## Targets", "", "| what | target | measured | |", "| --- | --- | --- | --- |",
        *(f"| {w} | {g} | {v} | {_verdict(ok)} |" for w, g, v, ok in doc.targets), "",
    ]
    findings = FINDINGS.read_text().strip().splitlines() if FINDINGS.exists() else []
    steps = ["## Run times", "", "| step | seconds |", "| --- | --- |",
             *(f"| {k} | {v:.0f} |" for k, v in run.get("durations", {}).items()), ""]
    DOC.write_text("\n".join([*head, *doc.lines, *findings, "", *steps]).rstrip() + "\n")
    return DOC


if __name__ == "__main__":
    print(write())

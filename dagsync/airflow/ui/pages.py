"""The page documents (dagsync.airflow.ui.model) as HTML: server-rendered, no script, light and dark with the
browser's colour scheme. Every value from the bucket goes through `esc`. Pure: documents in, text out."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

CSS = """
:root { color-scheme: light dark; --bg: #ffffff; --fg: #1a202c; --muted: #4a5568; --line: #e2e8f0;
  --panel: #f7fafc; --accent: #017cee; --ok: #2f855a; --warn: #b7791f; --bad: #c53030; --bad-bg: #fff5f5; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #1a202c; --fg: #e2e8f0; --muted: #a0aec0; --line: #2d3748; --panel: #23293a; --accent: #63b3ed;
    --ok: #68d391; --warn: #f6e05e; --bad: #fc8181; --bad-bg: #3b2226; } }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; gap: 1.5rem; align-items: baseline; padding: .75rem 1.5rem;
  border-bottom: 1px solid var(--line); }
header strong { font-size: 1.1rem; } header nav a { margin-right: 1rem; }
header .read { margin-left: auto; color: var(--muted); font-size: .85rem; }
main { padding: 1rem 1.5rem 2rem; max-width: 1200px; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
h1 { font-size: 1.4rem; margin: .5rem 0 1rem; } h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
dt { color: var(--muted); } dd { margin: 0; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .4rem .6rem;
  border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: .85rem; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
.muted { color: var(--muted); } .ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
.rejected { border-color: var(--bad); background: var(--bad-bg); margin-bottom: 1rem; }
tr.silent td, tr.unreadable td { background: var(--bad-bg); }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 9px; border: 1px solid currentColor;
  font-size: .8rem; }
"""
NONE = "&#8211;"  # an en dash: no value
STATE_CLASS = {"in sync": "ok", "applying": "warn", "error": "bad", "silent": "bad", "unreadable": "bad"}


def esc(value: object) -> str:
    return NONE if value is None or value == "" else html.escape(str(value))


def when(iso: str | None) -> str:
    """`2026-12-02T12:41:04.123+00:00` -> `2026-12-02 12:41:04 UTC`."""
    return NONE if not iso else esc(iso[:19].replace("T", " ") + " UTC")


def seconds(value: float | None) -> str:
    return NONE if value is None else f"{value:.2f} s"


def table(head: Iterable[str], rows: Iterable[tuple[str, Iterable[str]]], empty: str) -> str:
    """Cells are HTML already; each row is (css class, cells)."""
    body = "".join(f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cls, cells in rows)
    if not body:
        return f'<p class="muted">{esc(empty)}</p>'
    heads = "".join(f"<th>{esc(h)}</th>" for h in head)
    return f"<table><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table>"


def layout(base: str, title: str, read_at: str | None, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>DAG deploys: {esc(title)}</title><style>{CSS}</style></head><body>"
            f'<header><strong>DAG deploys</strong><nav><a href="{base}/">Overview</a><a href="{base}/hosts">Hosts</a>'
            f'</nav><span class="read">read from the bucket at {when(read_at)}</span></header>'
            f"<main>{body}</main></body></html>")


def release_link(base: str, sequence: int | None) -> str:
    return NONE if sequence is None else f'<a href="{base}/releases/{int(sequence)}">#{int(sequence)}</a>'


def project_link(base: str, project: str) -> str:
    return f'<a href="{base}/projects/{esc(project)}">{esc(project)}</a>'


def release_facts(base: str, r: Mapping[str, Any], signature: str = "") -> str:
    m = r["manifest"]
    return ("<dl>"
            f"<dt>Release</dt><dd>{release_link(base, r['sequence'])}, {esc(r['project_count'])} projects, "
            f"{esc(r['changed'])} changed</dd>"
            f"<dt>Released at</dt><dd>{when(r['published_at'])}</dd>"
            f"<dt>From the manifest write</dt><dd><code>{esc(m['etag'])}</code> at {when(m['written_at'])}</dd>"
            f"<dt>Written by</dt><dd>{esc(m['written_by'])}</dd>"
            f"<dt>Signed by key</dt><dd><code>{esc(r['signed_by'])}</code> {signature}</dd>"
            "</dl>")


def hosts_table(base: str, hosts: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for name, h in hosts.items():
        state = f'<span class="badge {STATE_CLASS[h["state"]]}">{esc(h["state"])}</span>'
        behind = f" releases, for {esc(h['behind_seconds'])} s" if h["lag"] else ""
        rows.append((h["state"].replace(" ", "-"), [
            f"<strong>{esc(name)}</strong>", release_link(base, h["sequence"]), f"{esc(h['lag'])}{behind}", state,
            f'<span class="bad">{esc(h["last_error"])}</span>' if h["last_error"] else NONE,
            esc(h["agent_version"]), when(h["updated_at"])]))
    return table(["Host", "Applied release", "Lag", "State", "Last error", "Agent", "Reported at"], rows,
                 "No host has reported yet.")


def overview(doc: Mapping[str, Any], base: str) -> str:
    parts = ["<h1>What is live</h1>"]
    if doc["rejection"]:
        rej = doc["rejection"]
        errors = "".join(f"<li>{esc(e)}</li>" for e in rej["errors"] if e != rej["reason"])
        parts.append(f'<div class="panel rejected"><strong class="bad">The latest manifest was refused</strong> '
                     f'at {when(rej["at"])}: <span class="reason">{esc(rej["reason"])}</span>'
                     f"{f'<ul>{errors}</ul>' if errors else ''}<div class=\"muted\">Hosts keep the live release "
                     f"below until a manifest passes.</div></div>")
    if doc["signature"]["problem"]:
        parts.append(f'<div class="panel rejected"><strong class="bad">Hosts refuse release.json</strong>: '
                     f'{esc(doc["signature"]["problem"])}<div class="muted">They keep the release they have; the '
                     "validator's next run writes a signed one.</div></div>")
    if doc["release"]:
        checked = {True: '<span class="badge ok">signature verified</span>', None: '<span class="muted">signature '
                   "not checked here (DAGSYNC_TRUSTED_KEYS is not set)</span>"}.get(doc["signature"]["trusted"], "")
        parts.append(f'<div class="panel">{release_facts(base, doc["release"], checked)}</div>')
    else:
        parts.append('<div class="panel">No release yet: nothing has been published and accepted.</div>')
    if doc["pending"]:
        items = ", ".join(f"{project_link(base, p)} {esc(v)}" for p, v in doc["pending"].items())
        parts.append(f'<p class="warn">In the manifest, not released yet: {items}</p>')
    rows = [("", [project_link(base, name), f"<code>{esc(p['version'])}</code>", when(p["published_at"]),
                  esc(p["published_by"]), seconds(p["parse_seconds"]), esc(len(p["dag_ids"]))])
            for name, p in doc["projects"].items()]
    parts.append("<h2>Projects</h2>" + table(["Project", "Version", "Published", "By", "Parse cost", "DAGs"], rows,
                                             "No project is live."))
    parts.append(f'<h2>Hosts</h2>{hosts_table(base, doc["hosts"])}')
    return layout(base, f"release {doc['sequence']}", doc["read_at"], "".join(parts))


def hosts(doc: Mapping[str, Any], base: str) -> str:
    body = (f"<h1>Hosts</h1><p class=\"muted\">Live release {release_link(base, doc['sequence'] or None)}. A host "
            f"still behind a release published more than {esc(doc['silent_after_seconds'])} s ago is "
            f"<em>silent</em>: it stopped applying or reporting.</p>{hosts_table(base, doc['hosts'])}")
    return layout(base, "hosts", doc["read_at"], body)


def release(doc: Mapping[str, Any], base: str) -> str:
    nav = " ".join(x for x in (
        f"previous {release_link(base, doc['previous'])}" if doc["previous"] else "",
        f"next {release_link(base, doc['next'])}" if doc["next"] else "",
        "<span class=\"badge ok\">live</span>" if doc["live"] else
        f"live now: {release_link(base, doc['live_sequence'])}") if x)
    rows = [("", [project_link(base, c["project"]), esc(c["change"]), f"<code>{esc(c['from'])}</code>",
                  f"<code>{esc(c['to'])}</code>", seconds(c["parse_seconds"]), esc(", ".join(c["dag_ids"]))])
            for c in doc["changes"]]
    against = ("against the one before" if doc["previous_known"] or not doc["previous"]
               else "(release before it is no longer in the bucket's history)")
    body = (f"<h1>Release #{esc(doc['sequence'])}</h1><p>{nav}</p><div class=\"panel\">{release_facts(base, doc)}</div>"
            f"<h2>What changed {against}</h2>"
            + table(["Project", "Change", "From", "To", "Parse cost", "DAG ids"], rows, "Nothing changed.")
            + f"<p class=\"muted\">{unchanged(doc['unchanged'])}</p>")
    return layout(base, f"release {doc['sequence']}", doc["read_at"], body)


def unchanged(names: list[str], shown: int = 20) -> str:
    if not names:
        return "No other project."
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"Unchanged: {esc(', '.join(names[:shown]))}{more}."


def project(doc: Mapping[str, Any], base: str) -> str:
    history = []
    for p in doc["history"]:
        notes = [n for n, on in (("rollback", p["rollback"]), ("retired", p["retired"])) if on]
        if p["until"] is None and not p["retired"] and p["version"] == doc["live"]:
            notes.append("live now")
        history.append(("", [release_link(base, p["sequence"]), f"<code>{esc(p['version'])}</code>", when(p["from"]),
                             when(p["until"]) if p["until"] else NONE, esc(", ".join(notes))]))
    published = [("", [f"<code>{esc(e['version'])}</code>", when(e["published_at"]), esc(e["published_by"]),
                       seconds(e["parse_seconds"]), esc(len(e["dag_ids"])),
                       ", ".join(release_link(base, s) for s in e["live_in_releases"]) or NONE])
                 for e in doc["published"]]
    body = (f"<h1>{esc(doc['project'])}</h1><p>Live version: <code>{esc(doc['live'])}</code></p>"
            "<h2>When each version was live</h2>"
            + table(["Release", "Version", "Live from", "Until", "Note"], history, "No release has made it live yet.")
            + "<h2>Published versions</h2>"
            + table(["Version", "Published", "By", "Parse cost", "DAGs", "Live in releases"], published,
                    "Nothing published."))
    return layout(base, doc["project"], doc["read_at"], body)


def problem(base: str, status: int, message: str) -> str:
    body = f'<h1>Cannot show deploys ({status})</h1><p class="bad">{esc(message)}</p>'
    return layout(base, "unavailable", None, body)

"""Pure planning: what to do to make the local DAG folder equal the release. No I/O here.

`plan` compares the release with a `LocalView` (what the volume scan found) and returns a `Plan`;
`plan_retention` picks store trees that may be deleted. Both are tested with plain values."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from dagsync.core.models import Release, ReleasedProject


@dataclass(frozen=True)
class LocalView:
    """What is on disk, already checked for drift.

    links: project -> tree name its symlink points at ("" when the link is ours but broken or retargeted).
    trees: project -> healthy trees in the store. blocked: names held by entries dagsync does not own."""

    sequence: int = 0
    links: Mapping[str, str] = field(default_factory=dict)
    trees: Mapping[str, Collection[str]] = field(default_factory=dict)
    blocked: Collection[str] = ()


@dataclass(frozen=True)
class Fetch:
    project: str
    entry: ReleasedProject


@dataclass(frozen=True)
class Link:
    project: str
    tree: str


@dataclass(frozen=True)
class Plan:
    sequence: int
    stale: bool = False  # the release is older than what this host already applied: do nothing
    fetch: tuple[Fetch, ...] = ()
    link: tuple[Link, ...] = ()
    unlink: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.fetch or self.link or self.unlink)


class UnknownProject(LookupError):
    """A project asked for by name is not in the release."""


def plan(release: Release, local: LocalView, only: Collection[str] | None = None) -> Plan:
    """Make the folder match the release. With `only`, touch just those projects and remove nothing."""
    if release.sequence < local.sequence:
        return Plan(sequence=release.sequence, stale=True)
    if only is not None:
        missing = sorted(set(only) - set(release.projects))
        if missing:
            raise UnknownProject(
                f"not in release.json (sequence {release.sequence}): {', '.join(missing)}; "
                f"it has: {', '.join(sorted(release.projects)) or 'no projects'}"
            )
    wanted = {p: e for p, e in release.projects.items() if only is None or p in only}
    fetch: list[Fetch] = []
    link: list[Link] = []
    blocked: list[str] = []
    for project, entry in sorted(wanted.items()):
        if project in local.blocked:
            blocked.append(project)
            continue
        tree = entry.tree_name
        present = tree in local.trees.get(project, ())
        if not present:
            fetch.append(Fetch(project, entry))
        if not present or local.links.get(project) != tree:
            link.append(Link(project, tree))
    unlink = () if only is not None else tuple(sorted(p for p in local.links if p not in wanted))
    return Plan(
        sequence=release.sequence, fetch=tuple(fetch), link=tuple(link), unlink=unlink, blocked=tuple(blocked)
    )


def plan_retention(
    history: Mapping[str, Mapping[str, float | None]], *, keep: int, grace: float, now: float
) -> list[tuple[str, str]]:
    """Trees to delete. history: project -> tree -> time it stopped being live (None: live or in use).

    Per project the live tree plus the most recently retired ones make `keep` versions; older
    retired trees go once they have been out of use for `grace` seconds."""
    doomed: list[tuple[str, str]] = []
    for project, trees in sorted(history.items()):
        live = sum(1 for retired in trees.values() if retired is None)
        retired = sorted(
            ((at, tree) for tree, at in trees.items() if at is not None), key=lambda item: (-item[0], item[1])
        )
        keep_retired = max(0, keep - min(live, 1))
        for at, tree in retired[keep_retired:]:
            if now - at >= grace:
                doomed.append((project, tree))
    return doomed

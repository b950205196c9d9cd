"""Pure planning: what to do to make the local DAG folder equal the release. No I/O here.

`plan` compares the release with a `LocalView` (what the volume scan found) and returns a `Plan`;
`plan_retention` picks store trees that may be deleted. Both are tested with plain values."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from dagsync.core.models import Entry, Released


@dataclass(frozen=True)
class LocalView:
    """What is on disk, already checked for drift.

    links: project -> tree name its symlink points at ("" when the link is ours but broken or retargeted).
    trees: project -> healthy trees in the store. blocked: names held by entries dagsync does not own.
    view: the release the `current` view shows (0: none); view_trees: project -> tree of its links."""

    sequence: int = 0
    links: Mapping[str, str] = field(default_factory=dict)
    trees: Mapping[str, Collection[str]] = field(default_factory=dict)
    blocked: Collection[str] = ()
    view: int = 0
    view_trees: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)  # one Fetch and two Links a project in a cold sync: 10,000 of each
class Fetch:
    project: str
    entry: Entry


@dataclass(frozen=True, slots=True)
class Link:
    project: str
    tree: str


@dataclass(frozen=True)
class View:
    """The release view to write and make current: every project of the release and its tree."""

    sequence: int
    trees: Mapping[str, str]


@dataclass(frozen=True)
class Plan:
    sequence: int
    stale: bool = False  # the release is older than what this host already applied: do nothing
    fetch: tuple[Fetch, ...] = ()
    touch: tuple[Link, ...] = ()  # trees that are about to become live: fresh mtimes first (docs/design.md)
    view: View | None = None
    link: tuple[Link, ...] = ()
    unlink: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.fetch or self.link or self.unlink or self.view)


class UnknownProject(LookupError):
    """A project asked for by name is not in the release."""


def plan(release: Released, local: LocalView, only: Collection[str] | None = None,
         changed: Collection[str] | None = None) -> Plan:
    """Make the folder match the release. With `only`, touch just those projects and remove nothing.

    With `changed` (an event cycle on a volume known to hold the release before, its view current: sync.py),
    `local` describes only the projects the release changed, and only they are compared; every other project is
    taken as it is, and the release view is the current one (`local.view_trees`, every project) with the changes."""
    if release.sequence < local.sequence:
        return Plan(sequence=release.sequence, stale=True)
    if only is not None:
        missing = sorted(set(only) - set(release.projects))
        if missing:
            raise UnknownProject(
                f"not in release.json (sequence {release.sequence}): {', '.join(missing)}; "
                f"it has: {', '.join(sorted(release.projects)) or 'no projects'}"
            )
    trees = _trees(release, local, changed)
    names = only if only is not None else changed
    wanted = release.projects if names is None else {p: release.projects[p] for p in names if p in release.projects}
    fetch: list[Fetch] = []
    link: list[Link] = []
    touch: list[Link] = []
    blocked: list[str] = []
    for project, entry in sorted(wanted.items()):
        tree = trees[project]
        present = tree in local.trees.get(project, ())
        if not present:
            fetch.append(Fetch(project, entry))  # a blocked name is still fetched: the release view needs it
        relink = project not in local.blocked and (not present or local.links.get(project) != tree)
        if project in local.blocked:
            blocked.append(project)
        elif relink:
            link.append(Link(project, tree))
        if relink or (only is None and local.view_trees.get(project) != tree):
            touch.append(Link(project, tree))
    view = None
    if only is None and (local.view != release.sequence or (changed is None and dict(local.view_trees) != trees)):
        view = View(release.sequence, trees)
    unlink = () if only is not None else tuple(sorted(p for p in local.links if p not in release.projects))
    return Plan(sequence=release.sequence, fetch=tuple(fetch), touch=tuple(touch), view=view, link=tuple(link),
                unlink=unlink, blocked=tuple(blocked))


def _trees(release: Released, local: LocalView, changed: Collection[str] | None) -> dict[str, str]:
    """project -> tree of every project of the release: each entry's tree name once (10,000 of them: ~20 ms), or
    only the changed ones' on top of the current view's."""
    if changed is not None:
        trees = dict(local.view_trees)
        for project in changed:
            entry = release.projects.get(project)
            if entry is None:
                trees.pop(project, None)
            else:
                trees[project] = entry.tree_name
        if len(trees) == len(release.projects):
            return trees
    return {p: e.tree_name for p, e in release.projects.items()}


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


def plan_view_retention(known: Mapping[int, Mapping[str, str]], *, present: Collection[tuple[str, str]],
                        current: int | None, keep: int) -> list[int]:
    """Release views to delete: every one that names a tree no longer in the store, and the oldest beyond the
    newest `keep`. Never the current one."""
    have = set(present)
    whole = sorted(s for s, trees in known.items() if s != current and set(trees.items()) <= have)
    broken = [s for s in known if s != current and s not in whole]
    return sorted(broken + whole[: max(0, len(whole) - keep)])

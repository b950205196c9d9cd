"""Start-up repair of whatever a crash left behind. Runs before the first sync.

- staging dir left behind: emptied (extractions and downloads that never reached the store).
- temp symlink left behind (a flip cut short before its rename, of a project, of `current` or inside a release
  view): removed. The old link is still whole, and the first sync flips again if the release wants the new tree.
- state.json missing or corrupt: rebuilt from the links and the store on disk. The applied sequence
  is unknown after a rebuild, so it starts at 0 and the current release.json is taken as it is.
- a symlink pointing at a deleted tree: reported by the scan as a broken link; the first sync fetches
  the tree again and flips.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dagsync.core.archive import write_atomic

from . import logs, views
from .scan import adopt_tree
from .state import AgentState, StateCorrupt, dump_state, load_state
from .volume import Volume


@dataclass
class Recovery:
    state: AgentState
    staging_removed: int = 0
    temp_links_removed: list[str] = field(default_factory=list)
    state_rebuilt: str | None = None  # why, when it was


def rebuild_state(volume: Volume) -> AgentState:
    """What the disk says: our links, and a record for every tree in the store."""
    state = AgentState(rebuilt=True)
    for name in volume.entries():
        tree = volume.linked_tree(name)
        if tree is not None and volume.tree_path(name, tree).is_dir():
            state.links[name] = tree
    for project, trees in volume.list_trees().items():
        for tree in trees:
            adopt_tree(volume, state, project, tree)
    return state


def recover(volume: Volume) -> Recovery:
    volume.ensure_layout()
    removed = volume.clear_staging()
    temp_links = []
    for tmp in volume.temp_links():
        tmp.unlink()
        temp_links.append(tmp.name)
    if views.clear_temp(volume):
        temp_links.append("(release view links)")
    volume.ensure_airflowignore()
    why: str | None = None
    try:
        state = load_state(volume.state_path)
        if state is None:
            why = "state.json missing"
    except StateCorrupt as exc:
        state, why = None, f"state.json corrupt: {exc}"
    if state is None:
        state = rebuild_state(volume)
        write_atomic(volume.state_path, dump_state(state))
        if why == "state.json missing" and not (state.links or state.trees):
            why = None  # a fresh volume, nothing to recover
    out = Recovery(state=state, staging_removed=removed, temp_links_removed=temp_links, state_rebuilt=why)
    if removed or temp_links or why:
        logs.warning(
            "recovered volume", staging_removed=removed, temp_links_removed=temp_links, state_rebuilt=why
        )
    return out

"""state.json: what the agent records about its volume reads back as written, and older files still read."""

from __future__ import annotations

import json
from pathlib import Path

from dagsync.agent.state import AgentState, TreeRecord, dump_state, listing_digest, load_state
from dagsync.core.archive import write_atomic


def test_state_round_trips(tmp_path: Path) -> None:
    state = AgentState(sequence=3, highest_sequence=3, links={"sales": "1.0-abc"},
                       trees={"sales": {"1.0-abc": TreeRecord(version="1.0", listing=[("dag.py", 10, 5)])}})
    write_atomic(tmp_path / "state.json", dump_state(state))
    assert load_state(tmp_path / "state.json") == state


def test_a_state_file_from_before_the_listing_rename_still_reads(tmp_path: Path) -> None:
    # Given a state.json written when a tree's file listing was called "manifest"
    old = {"schema_version": 1, "sequence": 2, "highest_sequence": 2, "links": {"sales": "1.0-abc"},
           "trees": {"sales": {"1.0-abc": {"version": "1.0", "manifest": [["dag.py", 10, 5]], "digest": "d"}}}}
    (tmp_path / "state.json").write_text(json.dumps(old))
    # When it is loaded
    state = load_state(tmp_path / "state.json")
    # Then the listing is there under its new name, hashed as a current agent records it, and nothing was lost
    assert state is not None and state.sequence == 2
    assert state.trees["sales"]["1.0-abc"].listing == listing_digest([("dag.py", 10, 5)])

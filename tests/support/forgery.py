"""release.json written by hand, as whoever can write to the bucket would try it (issue 13): every form a host must
refuse, and the reason it must count the refusal under.

Each form is written over the current, genuine release N. All but the last are "release N+1": release N plus a
project `evil` whose archive was uploaded but never passed the gate, stored like the validator stores a release
(its shards, then release.json; no history entry). The last puts the signed bytes of release N-1 back at
release.json."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from dagsync.core import keys, releases, signatures
from dagsync.core.documents import JSON, read_release
from dagsync.core.models import ManifestWrite
from dagsync.core.serde import canonical
from dagsync.core.store import ObjectStore
from tests.support import signing
from tests.support.projects import write_release

EVIL = "evil"
EVIL_DAG = "from airflow.sdk import DAG\n\nwith DAG('evil_dag', schedule=None):\n    pass\n"
# form -> the reason a host refuses it (dagsync_agent_releases_refused_total{reason})
FORMS: dict[str, str] = {
    "no signature": signatures.MISSING,
    "garbage signature": signatures.BAD_SIGNATURE,
    "another release's signature": signatures.BAD_SIGNATURE,
    "signed by an untrusted key": signatures.UNTRUSTED_KEY,
    "older signed release replayed": "older_release",
}
SIGNATURE_FORMS = [f for f, reason in FORMS.items() if reason != "older_release"]


def forge(store: ObjectStore, form: str, src: Path) -> str:
    """Write release.json in `form` (see FORMS) over the current release; returns the reason it must be refused
    with. The older-release form needs the history of the release before the current one."""
    current = store.get(keys.RELEASE_KEY)
    release, _ = read_release(store)
    assert current is not None and release is not None and release.chain is not None, "forge over a release"
    if form == "older signed release replayed":
        older = store.get(keys.release_key(release.sequence - 1))
        assert older is not None, f"the history holds no release {release.sequence - 1} to replay"
        store.put(keys.RELEASE_KEY, older.data, content_type=JSON)
        return FORMS[form]
    evil = write_release(store, src, release.sequence + 1, {EVIL: ("6.6.6", {"evil_dag.py": EVIL_DAG})},
                         write=False).projects[EVIL]
    made = releases.compose(sequence=release.sequence + 1, chain=release.chain, now=datetime.now(UTC),
                            after={**release.projects, EVIL: evil}, manifest=ManifestWrite(etag='"forged"'))
    for digest, data in made.shards.items():
        store.put(keys.shard_key(digest), data, content_type=JSON)
    raw = made.root.model_dump(mode="json", exclude={"signature"})
    genuine = json.loads(current.data).get("signature") or {"key_id": signing.SIGNER.key_id}
    if form == "garbage signature":
        raw["signature"] = {**genuine, "value": base64.b64encode(os.urandom(71)).decode()}
    elif form == "another release's signature":
        raw["signature"] = genuine
    elif form == "signed by an untrusted key":
        raw["signature"] = signing.OTHER.sign(releases.signed_payload(raw)).model_dump(mode="json")
    else:
        assert form == "no signature", form
    store.put(keys.RELEASE_KEY, canonical(raw), content_type=JSON)
    return FORMS[form]

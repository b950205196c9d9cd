"""The DAG deploys pages in a real Airflow 3.3.2 `airflow api-server` (the cached venv, sqlite, the simple auth
manager) reading `dagsync local up` (moto on 127.0.0.1) and two real agents: the overview, release, hosts and project
pages as JSON and HTML, Airflow's own authentication in front of them, each DAG version in Airflow linking to its
release page, and a real headless Chromium rendering the overview inside and outside Airflow's UI.

Screenshots go to the test's output folder; with DAGSYNC_UI_SCREENSHOTS=DIR they are also copied there (how the
ones in docs/airflow.md were made: `DAGSYNC_UI_SCREENSHOTS=docs/img .venv/bin/python -m pytest
tests/e2e/test_airflow_ui.py`)."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dagsync.core import keys
from dagsync.core.aws import AwsSettings
from dagsync.core.models import HostStatus, Rejection
from dagsync.core.serde import load_json
from dagsync.core.store import S3Store
from dagsync.local.airflow import AirflowHome, api_ready, bundle_settings, ensure_airflow, free_port, ui_settings
from dagsync.local.procs import LocalStackProcess, Process, start_agent, wait_for
from dagsync.publish.publisher import promote, publish
from tests.support import chromium
from tests.support.projects import write_returning, write_version

pytestmark = pytest.mark.e2e
WAIT = 60.0
CLASH = "dag_id 'alpha_dag' is declared by more than one live project"


@dataclass
class Ui:
    url: str
    token: str
    airflow: AirflowHome
    store: S3Store
    work: Path
    releases: dict[str, int] = field(default_factory=dict)  # what made each release -> its sequence
    procs: list[Process] = field(default_factory=list)

    def get(self, path: str, *, token: str | None = "", cookie: str | None = None) -> tuple[int, str, str]:
        """(status, content type, body); `token` "" means the fixture's admin token, None none at all."""
        request = urllib.request.Request(self.url + path)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token or self.token}")
        if cookie is not None:
            request.add_header("Cookie", f"_token={cookie}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()

    def json(self, path: str) -> Any:
        status, kind, body = self.get(path)
        assert status == 200 and kind.startswith("application/json"), (status, body[:500], self.logs())
        return json.loads(body)

    def sequence(self) -> int:
        blob = self.store.get(keys.RELEASE_KEY)
        return int(json.loads(blob.data)["sequence"]) if blob else 0

    def host(self, name: str) -> int:
        blob = self.store.get(keys.host_status_key(name))
        return load_json(HostStatus, blob.data, name).sequence if blob else 0

    def change(self, label: str, write: Any, *hosts: str) -> int:
        """Make a change, wait until it is released, applied by `hosts` and shown by the pages."""
        before = self.sequence()
        write()
        assert wait_for(lambda: self.sequence() > before, timeout=WAIT), self.logs()
        sequence = self.releases[label] = self.sequence()
        assert wait_for(lambda: all(self.host(h) == sequence for h in hosts), timeout=WAIT), self.logs()
        assert wait_for(lambda: self.json("/dagsync/api/status")["sequence"] == sequence, timeout=WAIT), self.logs()
        return sequence

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_path.read_text()[-3000:]}" for p in self.procs if p.log_path)


@pytest.fixture(scope="module")
def ui(stack: LocalStackProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    python = ensure_airflow()
    work = tmp_path_factory.mktemp("airflow-ui")
    store = S3Store(AwsSettings(region="us-east-1", endpoint_url=stack.endpoint_url).client("s3"), stack.bucket)
    port = free_port()
    home = work / "airflow"
    dags = work / "host-1"
    settings = {**bundle_settings(dags, home, endpoint_url=stack.endpoint_url, bucket=stack.bucket,
                                  trusted_keys=Path(stack.trusted_keys_file)),
                **ui_settings(port, endpoint_url=stack.endpoint_url, bucket=stack.bucket)}
    airflow = AirflowHome(python, home, settings)
    airflow.migrate()
    url = f"http://127.0.0.1:{port}"
    agents = [start_agent(stack, h, work / h, log_path=work / f"{h}.log", extra=["--poll-wait", "2"])
              for h in ("host-1", "host-2")]
    api = airflow.start_api_server(port)
    processor = airflow.start_dag_processor()
    setup = Ui(url, "", airflow, store, work, procs=[*agents, api, processor])
    try:
        assert wait_for(lambda: api_ready(url) and airflow.password() is not None, timeout=120), setup.logs()
        setup.token = airflow.api_token(url)
        src = work / "src"
        # alpha 1 reaches both hosts; then host-2's agent stops, and everything after passes it by
        setup.change("alpha 1", lambda: publish(store, "alpha", "1", write_returning(src, "alpha", "1"),
                                                promote_now=True, published_by="e2e"), "host-1", "host-2")
        assert agents[1].stop() == 0
        setup.change("alpha 2", lambda: publish(store, "alpha", "2", write_returning(src, "alpha", "2"),
                                                promote_now=True, published_by="e2e"), "host-1")
        setup.change("beta 1", lambda: publish(store, "beta", "1", write_returning(src, "beta", "1"),
                                               promote_now=True, published_by="e2e"), "host-1")
        setup.change("alpha back to 1", lambda: promote(store, "alpha", "1"), "host-1")
        # Last, a manifest the validator refuses: a new project declaring alpha's dag_id
        publish(store, "clash", "1", write_version(src, "clash", 1, dag_id="alpha_dag"), promote_now=True,
                published_by="e2e")
        assert wait_for(lambda: (blob := store.get(keys.REJECTION_KEY)) is not None
                        and CLASH in load_json(Rejection, blob.data, "rejection").reason, timeout=WAIT), setup.logs()
        assert wait_for(lambda: setup.json("/dagsync/api/status")["rejection"] is not None, timeout=WAIT)
        yield setup
    finally:
        for proc in (processor, api, agents[0]):
            proc.stop()


def test_anonymous_requests_are_refused_and_a_token_or_the_session_cookie_is_accepted(ui: Ui) -> None:
    # Anonymous, and with a token Airflow did not sign: refused, and nothing of the page leaks
    for path in ("/dagsync/", "/dagsync/api/status", "/dagsync/hosts", "/dagsync/api/releases/1",
                 "/dagsync/projects/alpha"):
        status, _, body = ui.get(path, token=None)
        assert status == 401 and "alpha" not in body and "What is live" not in body, (path, status, body[:300])
        status, _, body = ui.get(path, token="not.a.jwt")
        assert status == 403 and "alpha" not in body, (path, status, body[:300])
    # A person who is not signed in is told to sign in to Airflow (a page, not Airflow's single-page app)
    status, kind, body = ui.get("/dagsync/", token=None)
    assert kind.startswith("text/html") and "sign in to Airflow first" in body
    # The API token from /auth/token and the browser's session cookie both open the page
    assert ui.get("/dagsync/api/status")[0] == 200
    status, kind, body = ui.get("/dagsync/", token=None, cookie=ui.token)
    assert status == 200 and kind.startswith("text/html") and "What is live" in body
    # Read-only: no route takes a write
    request = urllib.request.Request(ui.url + "/dagsync/api/status", method="POST",
                                     headers={"Authorization": f"Bearer {ui.token}"}, data=b"{}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 405


def test_the_overview_shows_the_live_release_its_projects_the_hosts_and_the_rejection(ui: Ui) -> None:
    doc = ui.json("/dagsync/api/status")
    live = ui.releases["alpha back to 1"]
    # The live release is the one release.json holds, from the manifest write that made it
    assert doc["sequence"] == live == ui.sequence()
    assert doc["release"]["manifest"]["etag"] and doc["release"]["signed_by"]
    assert doc["signature"] == {"checked": True, "trusted": True, "problem": None}  # the agents' pinned key
    assert doc["release"]["manifest"]["written_by"] and doc["release"]["manifest"]["written_at"]
    # Every live project with its version, who published it, and its parse cost
    assert {n: p["version"] for n, p in doc["projects"].items()} == {"alpha": "1", "beta": "1"}
    assert doc["projects"]["beta"]["published_by"].startswith("e2e") and doc["projects"]["beta"]["published_at"]
    assert doc["projects"]["alpha"]["dag_ids"] == ["alpha_dag"]
    # The hosts by name: host-1 applied the live release; host-2 stopped at alpha 1 and is behind
    hosts = doc["hosts"]
    assert hosts["host-1"]["sequence"] == live and hosts["host-1"]["lag"] == 0
    assert hosts["host-1"]["state"] == "in sync" and hosts["host-1"]["agent_version"]
    assert hosts["host-2"]["sequence"] == ui.releases["alpha 1"] and hosts["host-2"]["lag"] == live - ui.releases[
        "alpha 1"]
    assert hosts["host-2"]["state"] in ("applying", "silent")
    # The current rejection, with its reason, and the project it would have added shown as pending
    assert CLASH in doc["rejection"]["reason"] and doc["pending"] == {"clash": "1"}
    # The HTML page says the same
    status, kind, page = ui.get("/dagsync/")
    assert status == 200 and kind.startswith("text/html")
    for text in (f"#{live}", "host-1", "host-2", "alpha", "beta", "e2e", "The latest manifest was refused"):
        assert text in page, text
    assert CLASH.replace("'", "&#x27;") in page
    # Its links stay under the mount point Airflow gave the app
    assert f'href="/dagsync/releases/{live}"' in page and 'href="/dagsync/projects/beta"' in page


def test_a_release_page_shows_what_changed_and_a_project_page_the_rollback(ui: Ui) -> None:
    back = ui.releases["alpha back to 1"]
    doc = ui.json(f"/dagsync/api/releases/{back}")
    assert doc["changes"] == [{"project": "alpha", "change": "changed", "from": "2", "to": "1", "sha256": doc[
        "changes"][0]["sha256"], "parse_seconds": None, "dag_ids": ["alpha_dag"]}]
    assert doc["unchanged"] == ["beta"] and doc["live"] and doc["previous"] == back - 1
    added = ui.json(f"/dagsync/api/releases/{ui.releases['beta 1']}")
    assert [(c["project"], c["change"], c["to"]) for c in added["changes"]] == [("beta", "added", "1")]
    assert not added["live"] and added["next"] == ui.releases["beta 1"] + 1
    status, _, page = ui.get(f"/dagsync/releases/{back}")
    assert status == 200 and f"Release #{back}" in page and "changed" in page
    # alpha's history, newest first: back to 1 is a rollback
    project = ui.json("/dagsync/api/projects/alpha")
    assert project["live"] == "1"
    assert [(h["sequence"], h["version"], h["rollback"]) for h in project["history"]] == [
        (back, "1", True), (ui.releases["alpha 2"], "2", False), (ui.releases["alpha 1"], "1", False)]
    assert project["history"][1]["until_sequence"] == back
    assert [(e["version"], e["live"]) for e in project["published"]] == [("2", False), ("1", True)]
    status, _, page = ui.get("/dagsync/projects/alpha")
    assert status == 200 and "rollback" in page and "live now" in page
    # The hosts page
    hosts = ui.json("/dagsync/api/hosts")
    assert set(hosts["hosts"]) == {"host-1", "host-2"} and hosts["sequence"] == back
    # What is not there is a 404 that says so; a path cannot name anything else
    for path, why in ((f"/dagsync/api/releases/{back + 50}", f"release {back + 50} is not in the bucket"),
                      ("/dagsync/api/releases/x1", "is not a release sequence"),
                      ("/dagsync/api/projects/nope", "project nope has never been published"),
                      ("/dagsync/api/projects/Not.A.Project", "is not a project name")):
        status, _, body = ui.get(path)
        assert status == 404 and why in json.loads(body)["detail"], (path, body)
    status, _, body = ui.get("/dagsync/api/projects/..%2Fmanifest.yaml")
    assert status == 404 and "alpha" not in body


def test_each_dag_version_in_airflow_links_to_the_release_page_that_brought_it(ui: Ui) -> None:
    # The DAG processor reads the bundle, so Airflow records alpha_dag at the live release
    back = ui.releases["alpha back to 1"]
    versions: list[dict[str, Any]] = []

    def recorded() -> bool:
        status, _, body = ui.get("/api/v2/dags/alpha_dag/dagVersions?order_by=-version_number")
        versions[:] = json.loads(body).get("dag_versions", []) if status == 200 else []
        return any(v["bundle_version"] == str(back) for v in versions)

    assert wait_for(recorded, timeout=WAIT), ui.logs()
    (current,) = [v for v in versions if v["bundle_version"] == str(back)]
    assert current["bundle_url"] == f"{ui.url}/dagsync/releases/{back}"
    # And that link is the release's page
    status, _, page = ui.get(current["bundle_url"].removeprefix(ui.url))
    assert status == 200 and f"Release #{back}" in page


@pytest.mark.skipif(chromium.available() is None,
                    reason="Debian's `chromium` package is not installed (.ci/run installs it when it runs as root on "
                           "Debian); without it there is no real browser to render the page")
def test_chromium_renders_the_overview_and_airflow_lists_dag_deploys(ui: Ui, tmp_path: Path) -> None:
    live = ui.releases["alpha back to 1"]
    shots: list[Path] = []
    with chromium.Chromium(chromium.available() or "") as browser:
        # The browser's session: Airflow's own `_token` cookie
        browser.set_cookie(ui.url, "_token", ui.token)
        browser.open(f"{ui.url}/dagsync/")
        text = browser.text()
        for expected in (f"#{live}", "host-1", "host-2", CLASH, "alpha", "beta"):
            assert expected in text, (expected, text)
        shots.append(browser.screenshot(tmp_path / "overview.png"))
        browser.color_scheme("dark")
        shots.append(browser.screenshot(tmp_path / "overview-dark.png"))
        browser.color_scheme("light")
        for name, path, expected in (("release", f"/dagsync/releases/{live}", f"Release #{live}"),
                                     ("hosts", "/dagsync/hosts", "host-2"),
                                     ("project", "/dagsync/projects/alpha", "rollback")):
            browser.open(ui.url + path)
            assert expected in browser.text(), (name, browser.text())
            shots.append(browser.screenshot(tmp_path / f"{name}.png"))
        # Inside Airflow's UI: "DAG deploys" in its navigation, the page in its frame
        browser.open(f"{ui.url}/plugin/dagsync")
        assert wait_for(lambda: "DAG deploys" in browser.text() and "host-2" in browser.text(), timeout=WAIT), \
            browser.text()
        shots.append(browser.screenshot(tmp_path / "in-airflow.png"))
    assert all(s.stat().st_size > 10_000 for s in shots)
    if os.environ.get("DAGSYNC_UI_SCREENSHOTS"):
        out = Path(os.environ["DAGSYNC_UI_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, out / f"dagsync-ui-{shot.name}")

"""`make demo`: the whole loop on this machine. Publish the examples, watch them land on a host's DAG
folder (timing manifest write -> flip), promote a new version, roll back, retire one, and write release.json by
hand (the host refuses it: not signed by the validator). A reader scans the folder the whole time and must never
see a project missing or half-written. A real Airflow 3.3.2
`airflow dag-processor` with DagsyncBundle (installed into .cache/ on first use) reads the same host, and each
change is timed again until Airflow's metadata DB has it. Airflow's API server runs too, with the DAG deploys pages
(dagsync.airflow.ui) at the URL it prints; at the end the page must show the bucket's release."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagsync.agent import views
from dagsync.agent.volume import Volume
from dagsync.core import keys, releases
from dagsync.core.aws import AwsSettings
from dagsync.core.serde import canonical
from dagsync.core.store import S3Store
from dagsync.local.airflow import (
    BUNDLE_NAME,
    UI_USER,
    AirflowHome,
    MetadataDB,
    api_ready,
    bundle_settings,
    ensure_airflow,
    free_port,
    ui_settings,
)
from dagsync.local.procs import Process, running, start_agent, start_local_stack, wait_for
from dagsync.local.watch import Watcher, tree_files
from dagsync.publish.change import ManifestChange
from dagsync.publish.publisher import promote, publish, retire
from dagsync.publish.workflow import rollback

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST = "host-1"
AIRFLOW_WAIT = 60.0
Check = Callable[[MetadataDB, int], bool]  # does Airflow's DB show the change, made in release N?


def landed(dags_dir: Path, project: str, sha256: str | None) -> bool:
    link = dags_dir / project
    if sha256 is None:
        return not os.path.lexists(link)
    return os.path.islink(link) and os.readlink(link).endswith(sha256[:12])


class Demo:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.dags_dir = work / HOST / "dags"
        self.dags_dir.mkdir(parents=True)
        self.reader = Watcher(self.dags_dir)
        self.timings: list[float] = []
        self.airflow_timings: list[float] = []
        self.airflow_missed: list[str] = []
        self.shas: dict[tuple[str, str], str] = {}
        self.dag_ids: dict[str, list[str]] = {}
        self.forgery_refused = False
        self.bucket = ""
        self.ui_url = ""
        self.ui_ok = False

    def step(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def publish(self, store: S3Store, project: str, version: str, source: Path, *, live: bool = True) -> None:
        self.reader.published.setdefault(project, set()).add(tree_files(source))
        shown = source.relative_to(EXAMPLES.parent) if source.is_relative_to(EXAMPLES.parent) else source
        print(f"$ dagsync publish {project} {version} {shown}" + (" --promote" if live else ""), flush=True)
        result = publish(store, project, version, source, promote_now=False, published_by="demo")
        self.shas[(project, version)] = result.sha256
        print(f"  archive {result.size} bytes, {result.files} files, dag_ids {', '.join(result.dag_ids)}")
        if live:
            first = project not in self.dag_ids
            self.dag_ids[project] = list(result.dag_ids)
            check = registered(result.dag_ids) if first else has_code(result.dag_ids[0], source)
            self.flip(project, version, lambda: promote(store, project, version), check, echo=False)

    def flip(self, project: str, version: str | None, write: Callable[[], ManifestChange], check: Check, *,
             echo: bool = True) -> None:
        if echo:
            print(f"$ dagsync {'promote ' + project + ' ' + version if version else 'retire ' + project}")
        change: ManifestChange = write()
        written = time.perf_counter()
        sha = self.shas[(project, version)] if version else None
        if not wait_for(lambda: landed(self.dags_dir, project, sha) or not self.agent.alive, timeout=30,
                        interval=0.001) or not self.agent.alive:
            raise SystemExit(f"demo failed: {project} did not reach {version} on {HOST} (see {self.work}/agent.log)")
        elapsed = (time.perf_counter() - written) * 1000
        self.timings.append(elapsed)
        target = os.readlink(self.dags_dir / project) if version else "(removed)"
        print(f"  manifest {change.etag} -> {HOST}:{project} -> {target}  in {elapsed:.0f} ms", flush=True)
        if version:
            self.reader.must_exist.add(project)
        sequence = views.current_sequence(Volume(self.dags_dir)) or 0
        db = self.airflow.db
        if wait_for(lambda: check(db, sequence), timeout=AIRFLOW_WAIT, interval=0.02):
            seen = (time.perf_counter() - written) * 1000
            self.airflow_timings.append(seen)
            print(f"  Airflow has the change (release {sequence}) in {seen:,.0f} ms", flush=True)
        else:
            self.airflow_missed.append(f"{project} {version or 'retired'}")
            print(f"  Airflow did NOT show the change within {AIRFLOW_WAIT:.0f} s (see {self.airflow.home})")

    def start_airflow(self, stack_endpoint: str, bucket: str, trusted_keys: str) -> list[Process]:
        home = self.work / "airflow"
        port = free_port()
        self.ui_url = f"http://127.0.0.1:{port}"
        self.airflow = AirflowHome(ensure_airflow(say=True), home,
                                   {**bundle_settings(self.dags_dir, home, endpoint_url=stack_endpoint, bucket=bucket,
                                                      trusted_keys=Path(trusted_keys)),
                                    **ui_settings(port, endpoint_url=stack_endpoint, bucket=bucket)})
        self.airflow.migrate()
        processor = self.airflow.start_dag_processor()
        api = self.airflow.start_api_server(port)
        if not wait_for(lambda: self.airflow.db.bundle_refreshed(BUNDLE_NAME) or not processor.alive, timeout=120,
                        interval=0.1) or not processor.alive:
            processor.stop()
            api.stop()
            raise SystemExit(f"demo failed: airflow dag-processor did not start (see {home}/dag-processor.log)")
        print(f"airflow dag-processor (Airflow 3.3.2, DagsyncBundle '{BUNDLE_NAME}', sqlite DB in {home}) reads "
              f"{HOST}'s folder", flush=True)
        print(f"airflow api-server on {self.ui_url}: DAG deploys at {self.ui_url}/dagsync/ (Browse > DAG deploys; "
              f"user {UI_USER}, password in {home}/simple_auth_manager_passwords.json.generated)", flush=True)
        return [processor, api]

    def show_ui(self, store: S3Store) -> None:
        """The DAG deploys page, read as JSON with an API token, shows the release the bucket holds."""
        self.step("DAG deploys in Airflow's UI")
        stored = releases.read_root(store, releases.AcceptUnsigned())  # what the page must show, as hosts see it
        sequence = stored.root.sequence if stored else 0
        if not wait_for(lambda: api_ready(self.ui_url), timeout=120, interval=0.2):
            print(f"  airflow api-server did not answer (see {self.airflow.home}/api-server.log)")
            return
        request = urllib.request.Request(f"{self.ui_url}/dagsync/api/status",  # noqa: S310 - loopback
                                         headers={"Authorization": f"Bearer {self.airflow.api_token(self.ui_url)}"})
        doc: dict[str, Any] = {}

        def shown() -> bool:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
                doc.update(json.loads(answer.read()))
            return bool(doc["sequence"] == sequence)

        self.ui_ok = wait_for(shown, timeout=30, interval=0.5)
        print(f"  {self.ui_url}/dagsync/ shows release {doc.get('sequence')} (the bucket's: {sequence}), projects "
              f"{', '.join(doc.get('projects', {}))}, hosts {', '.join(doc.get('hosts', {}))}", flush=True)

    def forged(self, store: S3Store) -> None:
        """release.json written by hand (the next sequence, no signature): the host refuses it and keeps its DAGs."""
        self.step("write release.json by hand, not signed by the validator")
        genuine = store.get(keys.RELEASE_KEY)
        assert genuine is not None
        raw = json.loads(genuine.data)
        raw["sequence"] += 1
        raw.pop("signature", None)
        before = {p.name: os.readlink(p) for p in self.dags_dir.iterdir() if p.is_symlink()}
        seen = self.agent_log().count('"msg": "release refused"')
        print(f"$ aws s3 cp - s3://{self.bucket}/{keys.RELEASE_KEY}   # release {raw['sequence']}, no signature")
        store.put(keys.RELEASE_KEY, canonical(raw), content_type="application/json")
        self.agent.popen.send_signal(signal.SIGHUP)  # a full sync now instead of at the next reconcile
        if not wait_for(lambda: self.agent_log().count('"msg": "release refused"') > seen, timeout=30):
            raise SystemExit(f"demo failed: {HOST} did not refuse the forged release (see {self.work}/agent.log)")
        refusal = [ln for ln in self.agent_log().splitlines() if '"msg": "release refused"' in ln][-1]
        after = {p.name: os.readlink(p) for p in self.dags_dir.iterdir() if p.is_symlink()}
        print(f"  {HOST}: {json.loads(refusal)['error']}")
        print(f"  {HOST}'s DAG folder " + ("unchanged" if after == before else "CHANGED"))
        self.forgery_refused = after == before
        store.put(keys.RELEASE_KEY, genuine.data, content_type="application/json")  # the validator's, back

    def agent_log(self) -> str:
        path = self.work / "agent.log"
        return path.read_text() if path.exists() else ""

    def run(self) -> int:
        log = open(self.work / "local-stack.log", "w")  # noqa: SIM115
        stack = start_local_stack(hosts=1, log=log, trusted_keys_file=self.work / "release-signing.pem")
        self.agent = agent = start_agent(stack, HOST, self.dags_dir, reconcile_interval=60,
                                         log_path=self.work / "agent.log")
        with running(stack, agent):
            store = S3Store(AwsSettings(region="us-east-1", endpoint_url=stack.endpoint_url).client("s3"),
                            stack.bucket)
            print(f"local stack on {stack.endpoint_url}, bucket {stack.bucket}; {HOST} syncs into {self.dags_dir}")
            self.bucket = stack.bucket
            print(f"releases are signed by the stack's KMS key; {HOST} trusts only its public key, "
                  f"{stack.trusted_keys_file}")
            airflow = self.start_airflow(stack.endpoint_url, stack.bucket, stack.trusted_keys_file)
            try:
                released = self.steps(store)
                self.show_ui(store)
            finally:
                for proc in airflow:
                    proc.stop()
        log.close()
        return self.report(released)

    def steps(self, store: S3Store) -> bool:
        self.reader.start()
        self.step("publish the example projects (CI would run these)")
        for project in ("sales", "marketing", "finance"):
            self.publish(store, project, "1.0.0", EXAMPLES / project)
        self.step("the host's DAG folder")
        for entry in sorted(self.dags_dir.iterdir()):
            print(f"  {entry.name}" + (f" -> {os.readlink(entry)}" if entry.is_symlink() else ""))
        current = views.current_path(Volume(self.dags_dir))
        print(f"  .dagsync/current -> {os.readlink(current)}   (the whole release, flipped by one rename; "
              "DagsyncBundle reads it)")
        self.step("promote a new version of sales")
        v2 = self.work / "sales-1.1.0"
        shutil.copytree(EXAMPLES / "sales", v2)
        source = (v2 / "daily_sales_report.py").read_text().replace('REPORT_VERSION = "1"', 'REPORT_VERSION = "2"')
        (v2 / "daily_sales_report.py").write_text(source)
        self.publish(store, "sales", "1.1.0", v2)
        self.step("roll sales back (to the version live before 1.1.0)")
        print("$ dagsync rollback sales")
        self.flip("sales", "1.0.0", lambda: rollback(store, "sales")[2],
                  has_code(self.dag_ids["sales"][0], EXAMPLES / "sales"), echo=False)
        self.step("retire marketing")
        self.reader.must_exist.discard("marketing")
        self.flip("marketing", None, lambda: retire(store, "marketing"), retired(self.dag_ids["marketing"]))
        self.forged(store)
        blob = store.get(keys.RELEASE_KEY)
        self.reader.finish()
        return blob is not None

    def report(self, released: bool) -> int:
        self.step("summary")
        t = sorted(self.timings)
        print(f"  {len(t)} changes, manifest write -> flip on {HOST}: median {statistics.median(t):.0f} ms, "
              f"max {t[-1]:.0f} ms")
        a = sorted(self.airflow_timings)
        if a:
            print(f"  {len(a)} changes, manifest write -> Airflow has it (DagsyncBundle): median "
                  f"{statistics.median(a):,.0f} ms, max {a[-1]:,.0f} ms")
        for missed in self.airflow_missed:
            print(f"  Airflow never showed: {missed}")
        print(f"  reader: {self.reader.scans} scans of the DAG folder, {len(self.reader.violations)} torn or missing")
        for v in self.reader.violations[:5]:
            print(f"    {v}")
        if not self.ui_ok:
            print(f"  the DAG deploys page did not show the live release (see {self.airflow.home}/api-server.log)")
        ok = released and not self.reader.violations and not self.airflow_missed and self.forgery_refused and self.ui_ok
        print("demo " + ("passed" if ok else "FAILED") + f" (logs in {self.work})")
        return 0 if ok else 1


def registered(dag_ids: list[str]) -> Check:
    """Every DAG of a new project is in Airflow's DB, active, parsed at that release or later."""
    return lambda db, sequence: all(db.registered(d, sequence) for d in dag_ids)


def has_code(dag_id: str, source: Path) -> Check:
    """Airflow holds the DAG's code as it is in `source`, parsed at that release."""
    wanted = {p.read_text() for p in source.glob("*.py")}
    return lambda db, sequence: db.dag(dag_id) == (False, str(sequence)) and db.code(dag_id) in wanted


def retired(dag_ids: list[str]) -> Check:
    return lambda db, sequence: all(db.stale(d) for d in dag_ids)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="dagsync-demo-"))
    return Demo(work).run()


if __name__ == "__main__":
    sys.exit(main())

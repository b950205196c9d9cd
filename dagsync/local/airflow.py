"""Real Airflow on this machine, for `make demo`, the e2e tests and bench/airflow_e2e.py: apache-airflow 3.3.2 and
`dagsync[airflow]` (this checkout, editable) in their own venv under .cache/ (git-ignored), installed on first use
and reused after; one Airflow home per use (sqlite metadata DB from `airflow db migrate`); a real
`airflow dag-processor`; and read-only queries of what its metadata DB says."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dagsync.airflow.ui.settings import ENV_TTL
from dagsync.core import constants
from dagsync.local.procs import Process

AIRFLOW_VERSION = "3.3.2"
REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"
VENV = CACHE / f"airflow-{AIRFLOW_VERSION}"
READY = VENV / ".dagsync-ready"
BUNDLE_NAME = "dagsync"
BUNDLE_CLASSPATH = "dagsync.airflow.DagsyncBundle"
# What decides what dagsync[airflow] is in that venv: a change to any of these reinstalls it (not Airflow).
FINGERPRINT_FILES = ("pyproject.toml", "requirements.txt", "agent/requirements.txt")
CHECK = "import airflow, dagsync.airflow.bundle; print(airflow.__version__)"

# The Airflow settings DagsyncBundle is documented with (docs/airflow.md): the two a user changes. The bundle sets
# its own refresh interval (1 s).
BUNDLE_SETTINGS = {
    "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "1",
    "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "1",
}


def ensure_airflow(say: bool = False) -> Path:
    """The venv's python, with Airflow and dagsync[airflow] installed (1-2 min the first time, then instant). A file
    lock makes concurrent first uses install once."""
    python = VENV / "bin" / "python"
    stamp = f"{AIRFLOW_VERSION} {_fingerprint()}\n"
    if _read(READY) == stamp:
        return python
    CACHE.mkdir(exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    with open(CACHE / "airflow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _read(READY) == stamp:
            return python
        READY.unlink(missing_ok=True)
        if not (python.exists() and _airflow_works(python)):
            if say:
                print(f"installing apache-airflow {AIRFLOW_VERSION} into {VENV} (once; 1-2 minutes)", flush=True)
            subprocess.run([_base_python(), "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
            _pip(python, f"apache-airflow=={AIRFLOW_VERSION}")
        _pip(python, "-c", str(REPO / "agent" / "requirements.txt"), "-e", f"{REPO}[airflow]")
        done = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, timeout=120,
                              env=base_env(CACHE))
        if done.returncode != 0 or done.stdout.strip().splitlines()[-1:] != [AIRFLOW_VERSION]:
            raise RuntimeError(f"Airflow {AIRFLOW_VERSION} with dagsync[airflow] did not install into {VENV}:\n"
                               f"{done.stderr[-2000:]}")
        READY.write_text(stamp)
    return python


def _pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
                   check=True, timeout=1200)


def _airflow_works(python: Path) -> bool:
    done = subprocess.run([str(python), "-c", "import airflow; print(airflow.__version__)"], capture_output=True,
                          text=True, timeout=120, env=base_env(CACHE))
    return done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [AIRFLOW_VERSION]


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in FINGERPRINT_FILES:
        digest.update((REPO / name).read_bytes())
    return digest.hexdigest()[:16]


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _base_python() -> str:
    return getattr(sys, "_base_executable", None) or sys.executable


def base_env(home: Path) -> dict[str, str]:
    """This process's environment without Airflow's, Python's or dagsync's own settings, plus a home of its own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV", "DAGSYNC_", "AWS_PROFILE"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
               AIRFLOW__LOGGING__LOGGING_LEVEL="INFO")
    return env


def classic_settings(dags_dir: Path) -> dict[str, str]:
    """The classic setup: Airflow's default `dags-folder` bundle on the host folder, every other setting default."""
    return {"AIRFLOW__CORE__DAGS_FOLDER": str(dags_dir)}


def bundle_settings(dags_dir: Path, home: Path, *, endpoint_url: str | None = None,
                    bucket: str | None = None, trusted_keys: Path | None = None) -> dict[str, str]:
    """DagsyncBundle as docs/airflow.md configures it: the one bundle entry and the two settings, plus the agent's
    S3 settings for workers (the DAG processor never uses them)."""
    entry = {"name": BUNDLE_NAME, "classpath": BUNDLE_CLASSPATH, "kwargs": {"dags_dir": str(dags_dir)}}
    out = {
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([entry]),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home / "bundles"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "unused-dags-folder"),
        **BUNDLE_SETTINGS,
    }
    return {**out, **bucket_env(endpoint_url, bucket, trusted_keys)}


def bucket_env(endpoint_url: str | None, bucket: str | None, trusted_keys: Path | None = None) -> dict[str, str]:
    """The agent's settings for the bucket (the local stack's endpoint takes any credentials)."""
    out = {}
    if endpoint_url:
        out.update({constants.ENV_ENDPOINT_URL: endpoint_url, "AWS_ACCESS_KEY_ID": "dagsync-local",
                    "AWS_SECRET_ACCESS_KEY": "dagsync-local"})
    if bucket:
        out[constants.ENV_BUCKET] = bucket
    if trusted_keys:
        out[constants.ENV_TRUSTED_KEYS] = str(trusted_keys)
    return out


UI_USER = "admin"


def ui_settings(port: int, *, endpoint_url: str | None = None, bucket: str | None = None) -> dict[str, str]:
    """`airflow api-server` on 127.0.0.1:`port` with the simple auth manager (one admin, UI_USER, whose password it
    generates into AIRFLOW_HOME) and the DAG deploys pages reading `bucket`; `[api] base_url` is what DagsyncBundle
    links each DAG version's release page from."""
    out = {
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{UI_USER}:admin",
        # Shared by every process of this home (the API server checks the signature the DAG processor put on the
        # bundle's view URL with it); base64 of "dagsync local stack, not secret.", for loopback use only.
        "AIRFLOW__CORE__FERNET_KEY": "ZGFnc3luYyBsb2NhbCBzdGFjaywgbm90IHNlY3JldC4=",
        ENV_TTL: "1",
    }
    return {**out, **bucket_env(endpoint_url, bucket)}


@dataclass
class AirflowHome:
    """One Airflow home: its settings, its metadata DB and the processes started on it."""

    python: Path
    home: Path
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**base_env(self.home), **self.settings}

    @property
    def airflow(self) -> str:
        return str(self.python.with_name("airflow"))

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([self.airflow, "db", "migrate"], env=self.env, capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed in {self.home}:\n{done.stderr[-3000:]}")

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.airflow, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def start_dag_processor(self, log_name: str = "dag-processor.log") -> Process:
        log = open(self.home / log_name, "a")  # noqa: SIM115 - owned by the child
        popen = subprocess.Popen([self.airflow, "dag-processor"], env=self.env, stdout=log,
                                 stderr=subprocess.STDOUT, text=True)
        return Process(name=f"dag-processor {self.home.name}", popen=popen, log_path=self.home / log_name)

    def start_api_server(self, port: int, log_name: str = "api-server.log") -> Process:
        log = open(self.home / log_name, "a")  # noqa: SIM115 - owned by the child
        popen = subprocess.Popen([self.airflow, "api-server", "--host", "127.0.0.1", "--port", str(port),
                                  "--workers", "1"], env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True)
        return Process(name=f"api-server {self.home.name}", popen=popen, log_path=self.home / log_name)

    def api_token(self, url: str, user: str = UI_USER) -> str:
        """A bearer token from the API server's `POST /auth/token`, as the admin it generated a password for."""
        body = json.dumps({"username": user, "password": self.password(user) or ""}).encode()
        request = urllib.request.Request(f"{url}/auth/token", data=body, method="POST",  # noqa: S310 - loopback
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - our own loopback server
            return str(json.loads(answer.read())["access_token"])

    def password(self, user: str = UI_USER) -> str | None:
        """The password the simple auth manager generated for `user` (None until the API server has started)."""
        try:
            data = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        except (OSError, ValueError):
            return None
        found = data.get(user) if isinstance(data, dict) else None
        return found if isinstance(found, str) else None

    @property
    def db(self) -> MetadataDB:
        return MetadataDB(self.home / "airflow.db")


class MetadataDB:
    """Read-only questions to an Airflow 3.3.2 sqlite metadata DB (the processor keeps writing to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        except sqlite3.OperationalError:
            return []
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:  # locked for a moment, or not migrated yet
            return []
        finally:
            conn.close()

    def dag(self, dag_id: str) -> tuple[bool, str | None] | None:
        """(is_stale, bundle_version) of a DAG, or None when Airflow does not know it."""
        rows = self.query("select is_stale, bundle_version from dag where dag_id = ?", dag_id)
        return (bool(rows[0][0]), _str(rows[0][1])) if rows else None

    def registered(self, dag_id: str, at_least: int = 0) -> bool:
        """Known, not stale, and parsed at release `at_least` or later (0: any version, the classic bundle)."""
        row = self.dag(dag_id)
        if row is None or row[0]:
            return False
        return at_least == 0 or (row[1] is not None and row[1].isdigit() and int(row[1]) >= at_least)

    def stale(self, dag_id: str) -> bool:
        row = self.dag(dag_id)
        return row is not None and row[0]

    def serialized(self, dag_id: str) -> str:
        """The latest serialized DAG (JSON text), or ''."""
        rows = self.query("select sd.data from serialized_dag sd join dag_version dv on sd.dag_version_id = dv.id "
                          "where dv.dag_id = ? order by dv.version_number desc limit 1", dag_id)
        return str(rows[0][0]) if rows and rows[0][0] is not None else ""

    def code(self, dag_id: str) -> str:
        """The source Airflow holds for the DAG's latest version, or ''."""
        rows = self.query("select dc.source_code from dag_code dc join dag_version dv on dc.dag_version_id = dv.id "
                          "where dv.dag_id = ? order by dv.version_number desc limit 1", dag_id)
        return str(rows[0][0]) if rows and rows[0][0] is not None else ""

    def bundle_refreshed(self, name: str) -> bool:
        rows = self.query("select last_refreshed from dag_bundle where name = ?", name)
        return bool(rows and rows[0][0])


def api_ready(url: str) -> bool:
    """The API server answers its health check (and so serves /dagsync)."""
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as answer:  # noqa: S310 - loopback
            return bool(answer.status == 200)
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _str(value: object) -> str | None:
    return None if value is None else str(value)

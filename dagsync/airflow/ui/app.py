"""The FastAPI app Airflow's API server mounts at /dagsync: each page as HTML and as JSON under /api, behind Airflow's
own authentication (`requires_authenticated`: a browser session's cookie or a bearer token from /auth/token; anonymous
requests get 401, a bad token 403). Read-only (GET only); the bucket comes from the API server's environment, and a
request's path only names a release sequence or a project, each checked against its pattern."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any

from airflow.api_fastapi.core_api.security import requires_authenticated
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from dagsync.core.aws import AwsSettings
from dagsync.core.models import PROJECT_RE
from dagsync.core.store import S3Store

from . import model, pages
from .settings import NotConfigured, UiSettings
from .source import Source

log = logging.getLogger(__name__)
SEQUENCE_RE = re.compile(r"[1-9][0-9]{0,9}")
NO_STORE = {"Cache-Control": "no-store"}


def source_from_env() -> Source:
    settings = UiSettings.from_env()
    # A short read timeout: a request waits for the one read in flight, and an unreachable bucket should say so soon.
    client = AwsSettings.resolve(settings.region, settings.endpoint_url).client("s3", read_timeout=5)
    return Source(S3Store(client, settings.bucket), settings.ttl, verifier=settings.verifier())


def _sequence(arg: str) -> int:
    if not SEQUENCE_RE.fullmatch(arg):
        raise LookupError(f"{arg!r} is not a release sequence (a number from 1)")
    return int(arg)


def status(source: Source, arg: str) -> dict[str, Any]:
    return model.status_doc(source.live())


def hosts(source: Source, arg: str) -> dict[str, Any]:
    return model.host_page_doc(source.live())


def release(source: Source, arg: str) -> dict[str, Any]:
    sequence, live = _sequence(arg), source.live()
    read = source.release(sequence)
    if read is None:
        raise LookupError(f"release {sequence} is not in the bucket's release history (the live release is "
                          f"{live.view.sequence})")
    return model.release_doc(read, live)


def project(source: Source, arg: str) -> dict[str, Any]:
    if not PROJECT_RE.fullmatch(arg):
        raise LookupError(f"{arg!r} is not a project name")
    read = source.project(arg)
    if read is None:
        raise LookupError(f"project {arg} has never been published to this bucket")
    return model.project_doc(read, source.live())


Doc = Callable[[Source, str], dict[str, Any]]
Render = Callable[[dict[str, Any], str], str]
# (HTML path, JSON path, document, HTML renderer)
ROUTES: list[tuple[str, str, Doc, Render]] = [
    ("/", "/api/status", status, pages.overview),
    ("/hosts", "/api/hosts", hosts, pages.hosts),
    ("/releases/{arg}", "/api/releases/{arg}", release, pages.release),
    ("/projects/{arg}", "/api/projects/{arg}", project, pages.project),
]


def _base(request: Request) -> str:
    """Where this app is mounted, as the browser sees it (/dagsync, behind any base path of Airflow's)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def answer(request: Request, sources: Callable[[], Source], doc: Doc, render: Render | None, arg: str) -> Response:
    try:
        found = doc(sources(), arg)
    except LookupError as exc:
        code, message = 404, str(exc)
    except NotConfigured as exc:
        code, message = 503, str(exc)
    except Exception as exc:  # S3 down, a document that does not parse: say so, keep serving
        log.warning("dagsync UI: could not read the bucket", exc_info=True)
        code, message = 503, f"could not read the bucket: {type(exc).__name__}: {exc}"
    else:
        if render is None:
            return JSONResponse(found, headers=NO_STORE)
        return HTMLResponse(render(found, _base(request)), headers=NO_STORE)
    if render is None:
        return JSONResponse({"detail": message}, status_code=code, headers=NO_STORE)
    return HTMLResponse(pages.problem(_base(request), code, message), status_code=code, headers=NO_STORE)


def _endpoint(sources: Callable[[], Source], doc: Doc, render: Render | None) -> Callable[..., Response]:
    def endpoint(request: Request, arg: str = "") -> Response:
        return answer(request, sources, doc, render, arg)

    return endpoint


def create_app(make: Callable[[], Source] = source_from_env) -> FastAPI:
    app = FastAPI(title="dagsync: DAG deploys", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(requires_authenticated())])
    sources = functools.cache(make)  # made on the first request: a missing setting is reported on every page, not
    # raised in Airflow's start-up (an exception is not cached: the next request tries again)
    for html_path, json_path, doc, render in ROUTES:
        app.add_api_route(html_path, _endpoint(sources, doc, render), methods=["GET"], response_class=HTMLResponse)
        app.add_api_route(json_path, _endpoint(sources, doc, None), methods=["GET"])

    async def refused(request: Request, exc: HTTPException) -> Response:
        """Airflow's auth answers 401/403 as JSON; a person opening a page gets a page that says what to do."""
        if request.url.path.startswith(f"{_base(request)}/api/") or exc.status_code not in (401, 403):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        message = f"{exc.detail}: sign in to Airflow first, then open DAG deploys from its menu"
        return HTMLResponse(pages.problem(_base(request), exc.status_code, message), status_code=exc.status_code)

    app.add_exception_handler(HTTPException, refused)
    return app

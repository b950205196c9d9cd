"""DagsyncPlugin: Airflow loads it through the `airflow.plugins` entry point of `dagsync[airflow]`; the API server
mounts the pages at /dagsync and Airflow's UI lists "DAG deploys" under Browse, showing the page inside its frame.

Every Airflow process loads plugins (a task runner does, for macros), so this module stays cheap to import: the app,
and with it FastAPI and Airflow's API security module, is built on the API server's first request to /dagsync."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

PREFIX = "/dagsync"
Scope = MutableMapping[str, Any]
Asgi = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class DeferredApp:
    """An ASGI app that builds dagsync.airflow.ui.app.create_app() on its first request and hands every request to
    it."""

    @functools.cached_property
    def app(self) -> Asgi:
        from .app import create_app

        return create_app()  # type: ignore[no-any-return]

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        await self.app(scope, receive, send)


class DagsyncPlugin(AirflowPlugin):  # type: ignore[misc]
    name = "dagsync"
    fastapi_apps = [{"app": DeferredApp(), "url_prefix": PREFIX, "name": "DAG deploys"}]
    external_views = [{"name": "DAG deploys", "href": f"{PREFIX}/", "destination": "nav", "category": "browse",
                       "url_route": "dagsync"}]

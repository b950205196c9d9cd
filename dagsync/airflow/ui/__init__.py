"""The "DAG deploys" pages inside Airflow's UI: an Airflow plugin (dagsync.airflow.ui.plugin, registered through the
`airflow.plugins` entry point of `dagsync[airflow]`) that mounts a read-only FastAPI app at /dagsync on Airflow's API
server. Only `app` and `plugin` import Airflow or FastAPI; the rest (reading, the page model, HTML) is plain dagsync,
tested without Airflow:

    settings.py  the bucket and trusted keys, from the API server's environment (the agent's DAGSYNC_* names)
    source.py    reads the bucket through short-lived and content-addressed caches
    model.py     pure: what each page shows, as the JSON the /dagsync/api/... routes return
    pages.py     pure: that JSON as HTML (light and dark)
    app.py       the FastAPI app: routes, Airflow's auth dependency, errors as 404/503 pages
    plugin.py    DagsyncPlugin, cheap to import: the app is built on the first request"""

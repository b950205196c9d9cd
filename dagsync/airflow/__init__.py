"""dagsync inside Airflow 3: `dagsync.airflow.DagsyncBundle`, a versioned DAG bundle over the folder the agent keeps.

Install into Airflow's own environment with `pip install "dagsync[airflow]"`, then list it in
`[dag_processor] dag_bundle_config_list` (docs/airflow.md). Only `dagsync.airflow.bundle` imports Airflow; the rest
of this package (materializing a pinned release, settings) is plain dagsync and is tested without Airflow."""

from __future__ import annotations

from typing import Any

__all__ = ["DagsyncBundle"]


def __getattr__(name: str) -> Any:
    if name == "DagsyncBundle":  # Airflow imports the module, then asks for the class by name
        from .bundle import DagsyncBundle

        return DagsyncBundle
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

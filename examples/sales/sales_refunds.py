"""Sales team: reconcile refunds every hour."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(schedule="@hourly", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["sales"])
def sales_refunds() -> None:
    @task
    def load_refunds() -> int:
        return 3

    @task
    def post_adjustments(count: int) -> None:
        print(f"posted {count} refund adjustments")

    post_adjustments(load_refunds())


sales_refunds()

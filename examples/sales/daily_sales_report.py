"""Sales team: build the daily sales report."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

REPORT_VERSION = "1"


@dag(
    dag_id="sales_daily_report",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["sales"],
)
def sales_daily_report() -> None:
    @task
    def extract_orders() -> list[dict[str, float]]:
        return [{"order_id": 1, "amount": 120.0}, {"order_id": 2, "amount": 80.5}]

    @task
    def summarize(orders: list[dict[str, float]]) -> dict[str, float]:
        return {"orders": len(orders), "revenue": sum(o["amount"] for o in orders), "report": REPORT_VERSION}

    summarize(extract_orders())


sales_daily_report()

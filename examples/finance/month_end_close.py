"""Finance team: month-end close."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="finance_month_end_close",
    schedule="@monthly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["finance"],
)
def month_end_close() -> None:
    @task
    def close() -> str:
        period = pendulum.now("UTC").subtract(months=1).format("YYYY-MM")
        return f"closed {period}"

    close()


month_end_close()

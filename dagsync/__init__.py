"""dagsync: push Airflow DAG projects from CI to every host, atomically."""

__version__ = "0.1.0"

"""Helpers shared by the finance DAGs (imported relative to the project folder)."""

from __future__ import annotations


def close_period(period: str) -> str:
    return f"closed {period}"

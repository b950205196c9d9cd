"""Lambda handlers: thin Powertools wiring around the gate. Each one ships in its own asset (infra/bundling.py)."""

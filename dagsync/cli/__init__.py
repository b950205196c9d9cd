"""`dagsync`, the publisher CLI: one command registry (`main.py`), one exit-status table (`exits.py`)."""

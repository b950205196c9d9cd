"""Change events between the queue poller and the main loop: the poller offers, a sync takes them all.

Only the newest few are kept (a host that far behind catches up with one conditional read anyway); a message that
is not a change event is still a kick, only without a delta."""

from __future__ import annotations

import threading

from pydantic import ValidationError

from dagsync.core.models import ChangeEvent

KEEP_EVENTS = 16


def parse_event(body: str) -> ChangeEvent | None:
    try:
        return ChangeEvent.model_validate_json(body)
    except ValidationError:
        return None


class Inbox:
    def __init__(self, keep: int = KEEP_EVENTS) -> None:
        self._lock = threading.Lock()
        self._events: dict[int, ChangeEvent] = {}
        self._keep = keep

    def offer(self, event: ChangeEvent) -> None:
        with self._lock:
            self._events[event.sequence] = event
            for sequence in sorted(self._events)[:-self._keep]:
                del self._events[sequence]

    def take(self) -> list[ChangeEvent]:
        """Every event offered since the last take, oldest first."""
        with self._lock:
            events, self._events = [self._events[s] for s in sorted(self._events)], {}
        return events

"""What one dagsync deployment consists of, as plain data.

The CDK stack (infra/) and the embedded default (`dagsync local up`) both build their resources from
`Topology`, so the two cannot drift apart; a test holds them against each other."""

from __future__ import annotations

from dataclasses import dataclass, field

from dagsync.core import constants, keys


@dataclass(frozen=True)
class Subscription:
    topic: str
    queue: str
    raw_message_delivery: bool = True


@dataclass(frozen=True)
class NotificationRule:
    """S3 -> SQS: object-created events on exactly one key."""

    queue: str
    events: tuple[str, ...]
    prefix: str
    suffix: str


@dataclass(frozen=True)
class Topology:
    prefix: str
    hosts: tuple[str, ...]
    manifest_events_queue: str = field(init=False)
    manifest_events_dlq: str = field(init=False)
    changes_topic: str = field(init=False)
    alerts_topic: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "manifest_events_queue", constants.manifest_events_queue_name(self.prefix))
        object.__setattr__(self, "manifest_events_dlq", constants.manifest_events_dlq_name(self.prefix))
        object.__setattr__(self, "changes_topic", constants.changes_topic_name(self.prefix))
        object.__setattr__(self, "alerts_topic", constants.alerts_topic_name(self.prefix))

    def signing_key_alias(self, name: str = constants.DEFAULT_SIGNING_KEY) -> str:
        """The alias of release signing key `name` (a deployment may have two during a rotation)."""
        return constants.signing_key_alias(self.prefix, name)

    def host_queue(self, host: str) -> str:
        return constants.host_queue_name(self.prefix, host)

    def host_dlq(self, host: str) -> str:
        return constants.host_dlq_name(self.prefix, host)

    @property
    def queues(self) -> tuple[str, ...]:
        """Every working queue (dead-letter queues excluded)."""
        return (self.manifest_events_queue, *(self.host_queue(h) for h in self.hosts))

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.changes_topic, self.alerts_topic)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(Subscription(topic=self.changes_topic, queue=self.host_queue(h)) for h in self.hosts)

    @property
    def notification(self) -> NotificationRule:
        return NotificationRule(
            queue=self.manifest_events_queue,
            events=constants.MANIFEST_EVENT_TYPES,
            prefix=keys.MANIFEST_KEY,
            suffix=keys.MANIFEST_KEY,
        )

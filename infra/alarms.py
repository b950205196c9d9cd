"""Alarms, all to the alert topic: dead letters, validator errors, rejected manifests, silent hosts.

Silent hosts: the agent pushes nothing to CloudWatch, but it long-polls its queue without pause
(20 s waits), so SQS itself records a heartbeat: every poll is either an empty receive
(NumberOfEmptyReceives) or delivers messages (NumberOfMessagesReceived). No receive at all for a whole
window means the agent is not running. Unlike ApproximateAgeOfOldestMessage, this fires while nothing is
being published too, which is when a dead host would otherwise go unnoticed; and once an SQS queue has
been idle for hours it stops reporting, which `treat_missing_data=BREACHING` keeps in alarm."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from dagsync.core import constants

PERIOD = Duration.minutes(5)
REJECTIONS_METRIC = "Rejections"


class Alarms(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        topic: sns.ITopic,
        dead_letter_queues: Mapping[str, sqs.IQueue],
        validator: lambda_.IFunction,
        host_queues: Mapping[str, sqs.IQueue],
        host_silence: Duration,
    ) -> None:
        super().__init__(scope, id_)
        self.action = actions.SnsAction(topic)
        self.alarms: dict[str, cw.Alarm] = {}
        for name, dlq in dead_letter_queues.items():
            self._add(f"DeadLetters-{name}", dlq.metric_approximate_number_of_messages_visible(
                period=PERIOD, statistic=cw.Stats.MAXIMUM), threshold=1,
                description=f"Messages in the dead-letter queue {name}: inspect and redrive them")
        self._add("ValidatorErrors", validator.metric_errors(period=PERIOD, statistic=cw.Stats.SUM), threshold=1,
                  description="The validator Lambda failed; the schedule retries every minute")
        rejections = cw.Metric(
            namespace=constants.METRICS_NAMESPACE,
            metric_name=REJECTIONS_METRIC,
            dimensions_map={"service": constants.SERVICE_NAME},
            period=PERIOD,
            statistic=cw.Stats.SUM,
        )
        self._add("Rejections", rejections, threshold=1,
                  description="A manifest was rejected; see status/rejection.json. Hosts keep the last release")
        periods = max(1, -(-int(host_silence.to_seconds()) // int(PERIOD.to_seconds())))
        for host, queue in host_queues.items():
            polls = cw.MathExpression(
                expression="FILL(empty, 0) + FILL(received, 0)",
                using_metrics={
                    "empty": queue.metric("NumberOfEmptyReceives", period=PERIOD, statistic=cw.Stats.SUM),
                    "received": queue.metric_number_of_messages_received(period=PERIOD, statistic=cw.Stats.SUM),
                },
                label=f"receives by {host}",
                period=PERIOD,
            )
            self._add(f"HostSilent-{host}", polls, threshold=1, periods=periods,
                      comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                      missing=cw.TreatMissingData.BREACHING,
                      description=f"The agent on {host} has not polled its queue: it is down or cannot reach SQS")

    def _add(
        self,
        id_: str,
        metric: cw.IMetric,
        *,
        threshold: float,
        description: str,
        periods: int = 1,
        comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
    ) -> None:
        alarm = cw.Alarm(
            self,
            id_,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            comparison_operator=comparison,
            treat_missing_data=missing,
            alarm_description=description,
        )
        alarm.add_alarm_action(self.action)
        alarm.add_ok_action(self.action)
        self.alarms[id_] = alarm

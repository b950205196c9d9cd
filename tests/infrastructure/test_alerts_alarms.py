"""Alert topic and alarms on a bare stack."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template

from dagsync.core import constants
from infra.alarms import REJECTIONS_METRIC, Alarms
from infra.alerts import AlertTopic
from tests.infrastructure.helpers import bare_stack, dummy_code


def test_alert_topic_uses_a_rotated_key_cloudwatch_can_use_and_subscribes_the_email() -> None:
    stack = bare_stack()
    AlertTopic(stack, "Alerts", topic_name=constants.alerts_topic_name("dagsync-t"), email="ops@example.com")
    t = Template.from_stack(stack)
    t.has_resource_properties("AWS::SNS::Topic", {"TopicName": "dagsync-t-alerts", "KmsMasterKeyId": Match.any_value()})
    t.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True, "KeyPolicy": {"Statement": Match.array_with([
        Match.object_like({"Principal": {"Service": "cloudwatch.amazonaws.com"}})])}})
    t.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"})


def test_no_email_means_no_subscription() -> None:
    stack = bare_stack()
    AlertTopic(stack, "Alerts", topic_name="dagsync-t-alerts", email=None)
    Template.from_stack(stack).resource_count_is("AWS::SNS::Subscription", 0)


def alarms_template() -> Template:
    stack = bare_stack()
    topic = AlertTopic(stack, "Alerts", topic_name="dagsync-t-alerts", email=None).topic
    fn = lambda_.Function(stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.lambda_handler",
                          code=dummy_code())
    Alarms(
        stack, "Alarms", topic=topic,
        dead_letter_queues={"events-dlq": sqs.Queue(stack, "Dlq1"), "host-a-dlq": sqs.Queue(stack, "Dlq2")},
        validator=fn, host_queues={"a": sqs.Queue(stack, "HostA")}, host_silence=Duration.minutes(15),
    )
    return Template.from_stack(stack)


def test_alarms_cover_dead_letters_errors_rejections_and_silent_hosts() -> None:
    t = alarms_template()
    t.resource_count_is("AWS::CloudWatch::Alarm", 2 + 1 + 1 + 1)
    t.has_resource_properties("AWS::CloudWatch::Alarm", {"MetricName": "ApproximateNumberOfMessagesVisible",
                                                         "Namespace": "AWS/SQS", "Threshold": 1})
    t.has_resource_properties("AWS::CloudWatch::Alarm", {"MetricName": "Errors", "Namespace": "AWS/Lambda"})
    t.has_resource_properties("AWS::CloudWatch::Alarm", {
        "MetricName": REJECTIONS_METRIC, "Namespace": constants.METRICS_NAMESPACE,
        "Dimensions": [{"Name": "service", "Value": constants.SERVICE_NAME}],
    })


def test_a_host_that_stops_polling_alarms_even_when_nothing_is_published() -> None:
    t = alarms_template()
    t.has_resource_properties("AWS::CloudWatch::Alarm", {
        "ComparisonOperator": "LessThanThreshold",
        "TreatMissingData": "breaching",
        "EvaluationPeriods": 3,
        "Metrics": Match.array_with([
            Match.object_like({"MetricStat": Match.object_like({"Metric": Match.object_like(
                {"MetricName": "NumberOfEmptyReceives"})})}),
        ]),
    })


def test_every_alarm_notifies_the_alert_topic() -> None:
    alarms = alarms_template().find_resources("AWS::CloudWatch::Alarm")
    assert alarms and all(a["Properties"]["AlarmActions"] and a["Properties"]["OKActions"] for a in alarms.values())

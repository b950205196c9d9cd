"""Clients from dagsync.core.aws's trimmed botocore data make every call dagsync makes (moto in-process)."""

from __future__ import annotations

from moto import mock_aws

from dagsync.core.aws import AwsSettings


def test_every_service_dagsync_uses_answers() -> None:
    with mock_aws():
        settings = AwsSettings(region="eu-west-1")
        s3 = settings.client("s3")
        s3.create_bucket(Bucket="lean", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_object(Bucket="lean", Key="k", Body=b"v", IfNoneMatch="*")
        assert s3.get_object(Bucket="lean", Key="k")["Body"].read() == b"v"
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="lean")["Contents"]] == ["k"]
        sqs = settings.client("sqs")
        url = sqs.create_queue(QueueName="lean")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="m")
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["m"]
        sns = settings.client("sns")
        topic = sns.create_topic(Name="lean")["TopicArn"]
        assert sns.publish(TopicArn=topic, Message="m")["MessageId"]
        kms = settings.client("kms")
        key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        signed = kms.sign(KeyId=key, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
        assert kms.verify(KeyId=key, Message=b"m", Signature=signed["Signature"],
                          SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
        assert settings.client("sts").get_caller_identity()["Account"]

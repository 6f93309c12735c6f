"""The kit's one botocore session and its plain-dict loading of botocore's data files."""

from __future__ import annotations

from botocore.loaders import Loader

from risingstars.kit import aws as kit_aws


def test_every_client_shares_one_session_with_the_plain_loader() -> None:
    assert kit_aws.session() is kit_aws.session()
    loader = kit_aws.session().get_component("data_loader")
    assert isinstance(loader.file_loader, kit_aws.PlainJSONFiles)


def test_models_load_the_same_as_with_botocores_own_loader() -> None:
    # Fresh loaders: the session's cached models are edited in place by clients' handlers.
    ours, theirs = Loader(file_loader=kit_aws.PlainJSONFiles()), Loader()
    for service in ("s3", "sqs"):
        model = ours.load_service_model(service, "service-2")
        reference = theirs.load_service_model(service, "service-2")
        assert type(model) is dict and type(model["shapes"]) is dict
        assert model == reference and list(model["shapes"]) == list(reference["shapes"])
    assert ours.load_data("endpoints") == theirs.load_data("endpoints")
    assert ours.load_data("partitions") == theirs.load_data("partitions")


# -- what AWS answered (moto's server over HTTP) ------------------------------------------------


async def test_s3_not_found_codes_are_one_set(aws, moto_url) -> None:
    from botocore.exceptions import ClientError

    from risingstars.kit.settings import AWSSettings

    settings = AWSSettings(aws_endpoint_url=moto_url)
    async with kit_aws.client("s3", settings) as s3:
        answers = []
        for call in (
            s3.head_object(Bucket=aws.bucket, Key="missing"),
            s3.get_object(Bucket=aws.bucket, Key="missing"),
            s3.list_parts(Bucket=aws.bucket, Key="missing", UploadId="gone"),
        ):
            try:
                await call
            except ClientError as exc:
                answers.append(exc)
        assert [kit_aws.error_code(exc) for exc in answers] == ["404", "NoSuchKey", "NoSuchUpload"]
        assert all(kit_aws.is_not_found(exc) for exc in answers)
        try:
            await s3.head_bucket(Bucket="no-such-bucket-of-ours")
        except ClientError as exc:
            assert kit_aws.error_code(exc) == "404"
    assert kit_aws.error_code(ValueError("no response")) == ""


async def test_the_dead_letter_queue_comes_from_the_redrive_policy(aws, moto_url) -> None:
    from risingstars.kit.settings import AWSSettings

    settings = AWSSettings(aws_endpoint_url=moto_url)
    async with kit_aws.client("sqs", settings) as sqs:
        assert await kit_aws.dead_letter_url(sqs, aws.jobs_queue_url) == aws.dlq_url
        policy = await kit_aws.redrive_policy(sqs, aws.jobs_queue_url)
        assert policy is not None and int(policy["maxReceiveCount"]) == 3
        assert await kit_aws.dead_letter_url(sqs, aws.events_queue_url) == ""

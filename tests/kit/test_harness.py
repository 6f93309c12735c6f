import asyncpg
import boto3


async def test_fresh_database_is_empty_and_isolated(database_url: str, pg_dsn: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
        assert (await conn.fetchval("SELECT current_database()")).startswith("t_")
    finally:
        await conn.close()


def test_aws_resources_have_a_redrive_policy(aws) -> None:
    sqs = boto3.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=aws.jobs_queue_url, AttributeNames=["All"])
    assert "maxReceiveCount" in attrs["Attributes"]["RedrivePolicy"]
    boto3.client("s3").head_bucket(Bucket=aws.bucket)

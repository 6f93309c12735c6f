"""The boot's externals phase: a private PostgreSQL and moto (S3, SQS, STS) standing in for RDS
and AWS (or for k8s/kind/deps' Services), prepared as docs/deploy.md prepares them."""

from __future__ import annotations

import dataclasses
import json
import urllib.parse

from risingstars.dev import infra


@dataclasses.dataclass
class External:
    """A name outside the cluster (RDS, the AWS endpoint) or a pre-existing Service (k8s/kind
    deps) served by one of the local servers: "postgres" or "moto"."""

    names: list[str]
    port: int
    server: str
    service: str | None = None  # a Service name, when it stands in for one
    real_port: int | None = None  # the real endpoint's port, when the values redirect it
    address: str | None = None  # where it stands, when the values place it (RDS in its subnet)


class ExternalsPhase:
    """PostgreSQL and moto, the database roles, the bucket and the queues (a phase of Cluster,
    which holds the state)."""

    def _start_servers(self) -> None:
        pgdir = self.dir / "pg"
        self.servers["postgres"] = infra.start_postgres(pgdir, log_path=self.dir / "pg.log")
        # moto reads a bucket name from any dotted host it does not know as an S3 endpoint
        # (aws.chartboot.test -> bucket "aws"); the overlay's endpoint names are path-style.
        endpoints = ",".join(
            f"http://{n}:{e.port}" for e in self.overlay.externals for n in e.names
        )
        # Overlays boot at once, each from its own thread: never through os.environ.
        self.servers["moto"] = infra.start_moto(
            log_path=self.dir / "moto.log", env={"MOTO_S3_CUSTOM_ENDPOINTS": endpoints}
        )
        pg = self.servers["postgres"]
        # As the deploy guide prepares the database (roles, schemas) before the install.
        for database, sql in self.overlay.database_sql:
            infra.psql(pg, sql, database)

    def _create_aws_resources(self) -> None:
        """The bucket and queues the rendered containers are told to use, as the deploy guide
        asks an operator to create them (the jobs queue with its dead-letter queue)."""
        import boto3

        env = {}
        for obj in [*self.manifests.deployments(), *self.manifests.install_jobs()]:
            for c in obj["spec"]["template"]["spec"]["containers"]:
                env.update({e["name"]: e.get("value") for e in c.get("env", []) if "value" in e})
        kw = {
            "endpoint_url": self.servers["moto"].url,
            "region_name": env.get("AWS_REGION", "us-east-1"),
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }
        s3, sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
        if env.get("S3_BUCKET"):
            s3.create_bucket(Bucket=env["S3_BUCKET"])
        names = {
            urllib.parse.urlsplit(v).path.rsplit("/", 1)[-1]
            for k, v in env.items()
            if k.endswith("QUEUE_URL") and v
        }
        for name in sorted(names, key=lambda n: not n.endswith("-dlq")):
            attrs = {}
            if f"{name}-dlq" in names:
                dlq = sqs.get_queue_url(QueueName=f"{name}-dlq")["QueueUrl"]
                arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
                attrs["RedrivePolicy"] = json.dumps(
                    {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "5"}
                )
            sqs.create_queue(QueueName=name, Attributes=attrs)
        self.step(f"AWS resources: bucket {env.get('S3_BUCKET')}, queues {sorted(names)}")

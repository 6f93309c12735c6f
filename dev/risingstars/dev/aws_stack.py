"""The AWS resources of one Rising Stars installation, as code: this module writes the
CloudFormation template `deploy/aws/rising-stars.yaml`, the IAM policy documents that
docs/deploy.md shows, and (from a deployed stack's outputs) the values file the chart installs
with.

Why a Python generator and not a hand-written template: each service's permissions are written
once (`policies`) and rendered twice, as CloudFormation intrinsics for the template and as
example ARNs for the guide, so the two cannot drift (`--check` fails when either is stale); the
queue timings come from the processor's own settings, not copied numbers. The output is plain
CloudFormation: operators deploy it with `aws cloudformation deploy`, no generator needed.

    python -m risingstars.dev.aws_stack write          # template + docs/deploy.md's policies
    python -m risingstars.dev.aws_stack check          # fails when either is stale
    python -m risingstars.dev.aws_stack values STACK   # values file from a deployed stack
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from risingstars.processor.settings import Settings as ProcessorSettings

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "deploy" / "aws" / "rising-stars.yaml"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

# Each has its image repository (the web app too: its static files are served by its own pods).
SERVICES = ("auth", "upload", "processor", "operator", "web")

_PROCESSOR = {f.name: f.default for f in dataclasses.fields(ProcessorSettings)}
# The queue's own visibility timeout is what a message gets when a processor dies without
# returning it: the processor's lease (it renews it every heartbeat while a job runs).
JOBS_VISIBILITY_SECONDS = int(_PROCESSOR["visibility_timeout_seconds"])
# Deliveries before SQS moves a job to its dead-letter queue: the processor's attempts.
JOBS_MAX_RECEIVES = int(_PROCESSOR["max_attempts"])
# The upload worker handles an event in well under a minute; a poison event is parked after
# this many deliveries instead of blocking nothing but costing receives forever.
EVENTS_VISIBILITY_SECONDS = 60
EVENTS_MAX_RECEIVES = 10
RETENTION_SECONDS = 4 * 86400
DLQ_RETENTION_SECONDS = 14 * 86400


# --- ARNs, rendered two ways ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arns:
    """How a policy names the stack's resources: CloudFormation intrinsics or example ARNs."""

    bucket: object
    objects: Callable[[str], object]
    queue: Callable[[str], object]


TEMPLATE_ARNS = Arns(
    bucket={"Fn::GetAtt": ["VideosBucket", "Arn"]},
    objects=lambda prefix: {"Fn::Sub": "${VideosBucket.Arn}/" + prefix + "/*"},
    queue=lambda logical: {"Fn::GetAtt": [logical, "Arn"]},
)

_EXAMPLE_QUEUES = {
    "JobsQueue": "rising-stars-jobs",
    "JobsDeadLetterQueue": "rising-stars-jobs-dlq",
    "EventsQueue": "rising-stars-events",
}
EXAMPLE_BUCKET = "arn:aws:s3:::rising-stars-videos-123456789012"
EXAMPLE_ARNS = Arns(
    bucket=EXAMPLE_BUCKET,
    objects=lambda prefix: f"{EXAMPLE_BUCKET}/{prefix}/*",
    queue=lambda logical: f"arn:aws:sqs:us-east-1:123456789012:{_EXAMPLE_QUEUES[logical]}",
)


def _statement(sid: str, actions: list[str], resources: list) -> dict:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions[0] if len(actions) == 1 else actions,
        "Resource": resources[0] if len(resources) == 1 else resources,
    }


def policies(arns: Arns) -> dict[str, list[dict]]:
    """Each role's permissions: the one source of the template and of docs/deploy.md."""
    return {
        # The API and the upload worker share it: originals in (streamed multipart, presigned
        # parts, tus's pending last part), a video's files read and deleted, jobs published,
        # events consumed, dead-lettered jobs read to fail their videos.
        "upload": [
            _statement(
                "VideoObjects",
                [
                    "s3:PutObject",
                    "s3:GetObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                [arns.objects("originals"), arns.objects("processed"), arns.objects("tus")],
            ),
            _statement("Bucket", ["s3:ListBucket", "s3:ListBucketMultipartUploads"], [arns.bucket]),
            _statement(
                "PublishJobs",
                ["sqs:SendMessage", "sqs:GetQueueAttributes"],
                [arns.queue("JobsQueue")],
            ),
            _statement(
                "ConsumeEvents",
                [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                [arns.queue("EventsQueue")],
            ),
            _statement(
                "FailDeadLetteredJobs",
                ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl"],
                [arns.queue("JobsDeadLetterQueue")],
            ),
        ],
        "processor": [
            _statement("ReadOriginals", ["s3:GetObject"], [arns.objects("originals")]),
            _statement(
                "WriteProcessed", ["s3:PutObject", "s3:GetObject"], [arns.objects("processed")]
            ),
            # Without ListBucket S3 answers 403 instead of 404 for a missing key.
            _statement("HeadMissingObjectsAs404", ["s3:ListBucket"], [arns.bucket]),
            _statement(
                "ConsumeJobs",
                [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                [arns.queue("JobsQueue")],
            ),
            _statement("PublishEvents", ["sqs:SendMessage"], [arns.queue("EventsQueue")]),
        ],
        # processor.autoscaling.mode operator: the operator reads the backlog.
        "operator": [
            _statement(
                "ReadBacklog",
                ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                [arns.queue("JobsQueue")],
            )
        ],
        # processor.autoscaling.mode keda: KEDA's own role (processor.autoscaling.keda.roleArn).
        "keda": [_statement("ReadBacklog", ["sqs:GetQueueAttributes"], [arns.queue("JobsQueue")])],
    }


def policy_document(statements: list[dict]) -> dict:
    return {"Version": "2012-10-17", "Statement": statements}


# --- the template ---------------------------------------------------------------------------

# Which Kubernetes ServiceAccounts assume each role (system:serviceaccount:<ns>:<name>).
_ROLE_ACCOUNTS = {
    "upload": ["${Namespace}:${Release}-upload", "${Namespace}:${Release}-upload-worker"],
    "processor": ["${Namespace}:${Release}-processor"],
    "operator": ["${Namespace}:${Release}-operator"],
    "keda": ["${KedaNamespace}:${KedaServiceAccount}"],
}
_ROLE_CONDITION = {"operator": "OperatorMode", "keda": "KedaMode"}


def _trust_policy(role: str) -> dict:
    """IRSA's trust: the cluster's OIDC provider, for these ServiceAccounts only. The condition
    keys hold the provider's host, which CloudFormation cannot substitute into a key: the
    document is one Fn::Sub'd JSON string."""
    subjects = [f"system:serviceaccount:{account}" for account in _ROLE_ACCOUNTS[role]]
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {
                    "Federated": "arn:${AWS::Partition}:iam::${AWS::AccountId}:oidc-provider/"
                    "${OidcProvider}"
                },
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        "${OidcProvider}:sub": subjects if len(subjects) > 1 else subjects[0],
                        "${OidcProvider}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }
    return {"Fn::Sub": json.dumps(document, separators=(",", ":"))}


def _role(role: str, statements: list[dict]) -> dict:
    resource = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": {"Fn::Sub": "${Release}-" + role},
            "Description": f"Rising Stars {role} (IRSA, least privilege)",
            "AssumeRolePolicyDocument": _trust_policy(role),
            "MaxSessionDuration": 3600,
            "Policies": [{"PolicyName": role, "PolicyDocument": policy_document(statements)}],
        },
    }
    if role in _ROLE_CONDITION:
        resource["Condition"] = _ROLE_CONDITION[role]
    return resource


def _queue(name: str, visibility: int, retention: int, dlq: str | None, receives: int) -> dict:
    properties = {
        "QueueName": {"Fn::Sub": "${Release}-" + name},
        "VisibilityTimeout": visibility,
        "MessageRetentionPeriod": retention,
        "SqsManagedSseEnabled": True,
    }
    if dlq:
        properties["RedrivePolicy"] = {
            "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
            "maxReceiveCount": receives,
        }
    return {
        "Type": "AWS::SQS::Queue",
        # SSE-SQS: encrypted at rest with SQS's own keys, no KMS calls or key grants per role.
        "Metadata": {
            "checkov": {
                "skip": [
                    {
                        "id": "CKV_AWS_27",
                        "comment": "encrypted with SSE-SQS (SqsManagedSseEnabled); the check "
                        "only knows KmsMasterKeyId",
                    }
                ]
            }
        },
        "Properties": properties,
    }


def _deny_plain_http(bucket: str) -> dict:
    return {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": {"Ref": bucket},
            "PolicyDocument": policy_document(
                [
                    {
                        "Sid": "TlsOnly",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [
                            {"Fn::GetAtt": [bucket, "Arn"]},
                            {"Fn::Sub": "${" + bucket + ".Arn}/*"},
                        ],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ]
            ),
        },
    }


_PRIVATE = {
    "BlockPublicAcls": True,
    "BlockPublicPolicy": True,
    "IgnorePublicAcls": True,
    "RestrictPublicBuckets": True,
}
_SSE_S3 = {
    "ServerSideEncryptionConfiguration": [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
}


def _private_bucket(name: str, properties: dict, **resource) -> dict:
    """Private, encrypted, versioned, kept when the stack goes (it holds people's videos)."""
    return {
        "Type": "AWS::S3::Bucket",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        **resource,
        "Properties": {
            "BucketName": {"Fn::Sub": "${Release}-" + name + "-${AWS::AccountId}"},
            "PublicAccessBlockConfiguration": _PRIVATE,
            "BucketEncryption": _SSE_S3,
            "VersioningConfiguration": {"Status": "Enabled"},
            **properties,
        },
    }


def _buckets() -> dict:
    return {
        "VideosBucket": _private_bucket(
            "videos",
            {
                "LoggingConfiguration": {
                    "DestinationBucketName": {"Ref": "AccessLogsBucket"},
                    "LogFilePrefix": "videos/",
                },
                "LifecycleConfiguration": {
                    "Rules": [
                        {
                            # An upload a client abandons keeps its parts, billed, forever: the
                            # upload worker aborts the ones it knows of, this rule the rest.
                            "Id": "abort-incomplete-multipart-uploads",
                            "Status": "Enabled",
                            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                        },
                        {
                            "Id": "expire-deleted-versions",
                            "Status": "Enabled",
                            "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
                        },
                    ]
                },
                # Browsers PUT presigned parts straight to S3 and read each part's ETag.
                "CorsConfiguration": {
                    "CorsRules": [
                        {
                            "Id": "presigned-part-uploads",
                            "AllowedMethods": ["PUT"],
                            "AllowedOrigins": [{"Ref": "WebOrigin"}],
                            "AllowedHeaders": ["*"],
                            "ExposedHeaders": ["ETag"],
                            "MaxAge": 3600,
                        }
                    ]
                },
            },
        ),
        "VideosBucketPolicy": _deny_plain_http("VideosBucket"),
        "AccessLogsBucket": _private_bucket(
            "access-logs",
            {
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "LifecycleConfiguration": {
                    "Rules": [
                        {"Id": "expire-logs", "Status": "Enabled", "ExpirationInDays": 90},
                        {
                            "Id": "expire-old-versions",
                            "Status": "Enabled",
                            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                        },
                    ]
                },
            },
            Metadata={
                "checkov": {
                    "skip": [
                        {
                            "id": "CKV_AWS_18",
                            "comment": "the access-log bucket cannot log to itself",
                        }
                    ]
                }
            },
        ),
        "AccessLogsBucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "AccessLogsBucket"},
                "PolicyDocument": policy_document(
                    [
                        {
                            "Sid": "S3ServerAccessLogs",
                            "Effect": "Allow",
                            "Principal": {"Service": "logging.s3.amazonaws.com"},
                            "Action": "s3:PutObject",
                            "Resource": {"Fn::Sub": "${AccessLogsBucket.Arn}/videos/*"},
                            "Condition": {
                                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
                            },
                        }
                    ]
                ),
            },
        },
    }


def _repositories() -> dict:
    """`rising-stars-<service>`, the chart's image repositories (the operator's too)."""
    return {
        f"{service.capitalize()}Repository": {
            "Type": "AWS::ECR::Repository",
            "Properties": {
                "RepositoryName": f"rising-stars-{service}",
                # Releases are pinned by tag and digest: a tag never moves.
                "ImageTagMutability": "IMMUTABLE",
                "ImageScanningConfiguration": {"ScanOnPush": True},
                "EncryptionConfiguration": {"EncryptionType": "KMS"},
            },
        }
        for service in SERVICES
    }


def template() -> dict:
    roles = policies(TEMPLATE_ARNS)
    resources = {
        **_buckets(),
        "JobsDeadLetterQueue": _queue("jobs-dlq", 30, DLQ_RETENTION_SECONDS, None, 0),
        "JobsQueue": _queue(
            "jobs",
            JOBS_VISIBILITY_SECONDS,
            RETENTION_SECONDS,
            "JobsDeadLetterQueue",
            JOBS_MAX_RECEIVES,
        ),
        "EventsDeadLetterQueue": _queue("events-dlq", 30, DLQ_RETENTION_SECONDS, None, 0),
        "EventsQueue": _queue(
            "events",
            EVENTS_VISIBILITY_SECONDS,
            RETENTION_SECONDS,
            "EventsDeadLetterQueue",
            EVENTS_MAX_RECEIVES,
        ),
        **{
            f"{role.capitalize()}Role": _role(role, statements)
            for role, statements in roles.items()
        },
        **_repositories(),
    }
    queue_url = {"JobsQueue", "JobsDeadLetterQueue", "EventsQueue"}
    outputs = {
        "Region": {"Value": {"Ref": "AWS::Region"}},
        "Registry": {
            "Value": {"Fn::Sub": "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}"}
        },
        "BucketName": {"Value": {"Ref": "VideosBucket"}},
        **{f"{q}Url": {"Value": {"Ref": q}} for q in sorted(queue_url)},
        **{
            f"{role.capitalize()}RoleArn": {
                "Value": {"Fn::GetAtt": [f"{role.capitalize()}Role", "Arn"]},
                **({"Condition": _ROLE_CONDITION[role]} if role in _ROLE_CONDITION else {}),
            }
            for role in roles
        },
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Rising Stars: video bucket, job and event queues with dead-letter "
        "queues, IRSA roles, image repositories. Generated by risingstars.dev.aws_stack.",
        "Parameters": {
            "Release": {
                "Type": "String",
                "Default": "rising-stars",
                "Description": "helm release name (prefixes every name)",
            },
            "Namespace": {"Type": "String", "Default": "rising-stars"},
            "OidcProvider": {
                "Type": "String",
                "Description": "the cluster's OIDC issuer without https:// "
                "(oidc.eks.REGION.amazonaws.com/id/ID)",
                "AllowedPattern": "^oidc\\.eks\\.[a-z0-9-]+\\.amazonaws\\.com/id/[A-Za-z0-9]+$",
            },
            "AutoscalingMode": {
                "Type": "String",
                "Default": "keda",
                "AllowedValues": ["keda", "operator", "hpa", "none"],
                "Description": "processor.autoscaling.mode: which scaler needs a role",
            },
            "KedaNamespace": {"Type": "String", "Default": "keda"},
            "KedaServiceAccount": {"Type": "String", "Default": "keda-operator"},
            "WebOrigin": {
                "Type": "String",
                "Default": "https://app.rising-stars.example.com",
                "Description": "the web app's origin, allowed to PUT presigned parts (CORS)",
            },
        },
        "Conditions": {
            "KedaMode": {"Fn::Equals": [{"Ref": "AutoscalingMode"}, "keda"]},
            "OperatorMode": {"Fn::Equals": [{"Ref": "AutoscalingMode"}, "operator"]},
        },
        "Resources": resources,
        "Outputs": outputs,
    }


HEADER = (
    "# Generated by `python -m risingstars.dev.aws_stack write`\n"
    "# (dev/risingstars/dev/aws_stack.py):\n"
    '# edit the generator, not this file. Deploy: docs/deploy.md, "AWS resources".\n'
)


class _NoAliases(yaml.SafeDumper):
    # CloudFormation rejects YAML anchors; shared dicts are written out each time.
    def ignore_aliases(self, data) -> bool:
        return True


def template_text() -> str:
    return HEADER + yaml.dump(template(), Dumper=_NoAliases, sort_keys=False, width=100)


# --- docs/deploy.md's policy blocks ----------------------------------------------------------

_BLOCK = re.compile(
    r"(<!-- (?P<kind>policy|trust) (?P<role>\w+) "
    r"\(generated: python -m risingstars.dev.aws_stack write\) -->\n)"
    r"```json\n.*?```\n",
    re.S,
)
EXAMPLE_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
    "OidcProvider": "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE",
    "Namespace": "rising-stars",
    "Release": "rising-stars",
    "KedaNamespace": "keda",
    "KedaServiceAccount": "keda-operator",
}


def example_trust_policy(role: str) -> dict:
    text = _trust_policy(role)["Fn::Sub"]
    return json.loads(re.sub(r"\$\{([\w:]+)\}", lambda m: EXAMPLE_PARAMETERS[m[1]], text))


def docs_text(doc: str) -> str:
    example = policies(EXAMPLE_ARNS)

    def block(match: re.Match) -> str:
        if match["kind"] == "trust":
            document = example_trust_policy(match["role"])
        else:
            document = policy_document(example[match["role"]])
        return f"{match[1]}```json\n{json.dumps(document, indent=2)}\n```\n"

    return _BLOCK.sub(block, doc)


# --- values from a deployed stack ------------------------------------------------------------


def values_from_outputs(outputs: dict[str, str]) -> dict:
    """The chart values a deployed stack decides (to layer over values-eks.yaml)."""
    irsa = "eks.amazonaws.com/role-arn"
    values: dict = {
        "image": {"registry": outputs["Registry"]},
        "aws": {
            "region": outputs["Region"],
            "s3Bucket": outputs["BucketName"],
            "jobsQueueUrl": outputs["JobsQueueUrl"],
            "deadLetterQueueUrl": outputs["JobsDeadLetterQueueUrl"],
            "eventsQueueUrl": outputs["EventsQueueUrl"],
        },
        "upload": {"serviceAccount": {"annotations": {irsa: outputs["UploadRoleArn"]}}},
        "uploadWorker": {"serviceAccount": {"annotations": {irsa: outputs["UploadRoleArn"]}}},
        "processor": {"serviceAccount": {"annotations": {irsa: outputs["ProcessorRoleArn"]}}},
    }
    if "KedaRoleArn" in outputs:
        values["processor"]["autoscaling"] = {"keda": {"roleArn": outputs["KedaRoleArn"]}}
    if "OperatorRoleArn" in outputs:
        values["operator"] = {"serviceAccount": {"annotations": {irsa: outputs["OperatorRoleArn"]}}}
    return values


def deploy_on_moto(workdir: Path, oidc: str = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"):
    """The template deployed on a throwaway moto server (CreateStack); its outputs."""
    import boto3

    from risingstars.dev import infra

    server = infra.start_moto(log_path=workdir / "moto-stack.log")
    try:
        cloudformation = boto3.client(
            "cloudformation",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id=infra.AWS_DUMMY_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=infra.AWS_DUMMY_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        cloudformation.create_stack(
            StackName="rising-stars",
            TemplateBody=TEMPLATE.read_text(),
            Parameters=[{"ParameterKey": "OidcProvider", "ParameterValue": oidc}],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
        return stack_outputs(cloudformation, "rising-stars")
    finally:
        infra.stop(server.proc)


def stack_outputs(cloudformation, stack: str) -> dict[str, str]:
    (described,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m risingstars.dev.aws_stack")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("write", help="write the template and docs/deploy.md's policies")
    commands.add_parser("check", help="fail when the template or the docs' policies are stale")
    values = commands.add_parser("values", help="print the chart values of a deployed stack")
    values.add_argument("stack")
    args = parser.parse_args(argv)
    doc = DEPLOY_DOC.read_text()
    if args.command == "write":
        TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
        TEMPLATE.write_text(template_text())
        DEPLOY_DOC.write_text(docs_text(doc))
        return 0
    if args.command == "check":
        stale = [
            str(path.relative_to(ROOT))
            for path, wanted in ((TEMPLATE, template_text()), (DEPLOY_DOC, docs_text(doc)))
            if not path.exists() or path.read_text() != wanted
        ]
        if stale:
            print(f"stale: {', '.join(stale)}; run: python -m risingstars.dev.aws_stack write")
            return 1
        return 0
    import boto3

    outputs = stack_outputs(boto3.client("cloudformation"), args.stack)
    yaml.safe_dump(values_from_outputs(outputs), sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""deploy/aws/rising-stars.yaml: generated, linted (cfn-lint, checkov), deployed on moto's
CloudFormation, and its outputs turned into values the chart renders into valid manifests."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import boto3
import yaml
from chart.manifests import component, env_value, of_kind, pod_spec
from chart.rendering import CHART, helm_template

from risingstars.dev import aws_stack


def test_template_and_the_guides_policies_are_generated_from_one_source():
    done = subprocess.run(
        [sys.executable, "-m", "risingstars.dev.aws_stack", "check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_guides_policies_drift_is_caught():
    """A hand edit of a policy in docs/deploy.md is what `check` exists to refuse."""
    doc = aws_stack.DEPLOY_DOC.read_text()
    edited = doc.replace('"sqs:SendMessage"', '"sqs:*"', 1)
    assert edited != doc
    assert aws_stack.docs_text(edited) == doc


def test_cfn_lint_reports_nothing():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(aws_stack.TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_checkov_reports_no_failed_check(tool_bin_with_checkov):
    done = subprocess.run(
        [
            *(str(tool_bin_with_checkov / "checkov"), "--skip-download"),
            *("--framework", "cloudformation", "-o", "json", "-f", str(aws_stack.TEMPLATE)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={"BC_SKIP_MAPPING": "TRUE", "PATH": "/usr/bin:/bin"},
    )
    report = json.loads(done.stdout)
    summary = report["summary"]
    assert summary["failed"] == 0, json.dumps(report["results"]["failed_checks"], indent=1)
    assert summary["passed"] > 0
    # Every skip carries its reason next to the resource.
    for skipped in report["results"]["skipped_checks"]:
        assert skipped["check_result"].get("suppress_comment"), skipped["check_id"]


def test_queue_timings_come_from_the_processor():
    resources = aws_stack.template()["Resources"]
    jobs = resources["JobsQueue"]["Properties"]
    from risingstars.processor.settings import Settings

    assert jobs["VisibilityTimeout"] == Settings.visibility_timeout_seconds
    assert jobs["RedrivePolicy"]["maxReceiveCount"] == Settings.max_attempts
    bucket = resources["VideosBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (rule,) = bucket["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedMethods"] == ["PUT"] and rule["ExposedHeaders"] == ["ETag"]
    assert {
        r["Id"]: r.get("AbortIncompleteMultipartUpload")
        for r in bucket["LifecycleConfiguration"]["Rules"]
    }["abort-incomplete-multipart-uploads"] == {"DaysAfterInitiation": 1}


def _document(raw):
    # moto returns an inline policy as the str() of a dict.
    return raw if isinstance(raw, dict) else ast.literal_eval(raw)


def test_the_stack_creates_what_the_services_are_given(stack):
    kw, outputs = stack
    sqs, iam, ecr = (boto3.client(n, **kw) for n in ("sqs", "iam", "ecr"))
    jobs_url = sqs.get_queue_url(QueueName="rising-stars-jobs")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=jobs_url, AttributeNames=["All"])["Attributes"]
    assert int(attributes["VisibilityTimeout"]) == aws_stack.JOBS_VISIBILITY_SECONDS
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":rising-stars-jobs-dlq")
    assert redrive["maxReceiveCount"] == aws_stack.JOBS_MAX_RECEIVES
    assert attributes["SqsManagedSseEnabled"] == "true"
    events_url = sqs.get_queue_url(QueueName="rising-stars-events")["QueueUrl"]
    events = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["RedrivePolicy"])
    assert "rising-stars-events-dlq" in events["Attributes"]["RedrivePolicy"]

    wanted = aws_stack.policies(aws_stack.EXAMPLE_ARNS)
    for role in ("upload", "processor", "keda"):
        got = iam.get_role_policy(RoleName=f"rising-stars-{role}", PolicyName=role)
        # The deployed policy is the guide's, with this account's names.
        assert _document(got["PolicyDocument"]) == aws_stack.policy_document(wanted[role])
        trust = iam.get_role(RoleName=f"rising-stars-{role}")["Role"]["AssumeRolePolicyDocument"]
        # The trust the guide shows, deployed: the OIDC provider, only the role's accounts.
        assert trust == aws_stack.example_trust_policy(role)
    # operator mode is off (AutoscalingMode keda): no operator role.
    assert "OperatorRoleArn" not in outputs
    repositories = {r["repositoryName"] for r in ecr.describe_repositories()["repositories"]}
    assert repositories == {f"rising-stars-{s}" for s in aws_stack.SERVICES}


def test_the_stacks_outputs_render_a_valid_eks_release(stack, tmp_path, tool_bin):
    _, outputs = stack
    values = aws_stack.values_from_outputs(outputs)
    path = tmp_path / "values-stack.yaml"
    path.write_text(yaml.safe_dump(values))
    done = helm_template((CHART / "values-eks.yaml", path))
    assert done.returncode == 0, done.stderr
    validated = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", *("--strict", "--quiet", "--no-warn"), "-"],
        input=done.stdout,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    objects = [o for o in yaml.safe_load_all(done.stdout) if o]
    accounts = {a["metadata"]["name"]: a for a in of_kind(objects, "ServiceAccount")}
    irsa = "eks.amazonaws.com/role-arn"
    for deployment in of_kind(objects, "Deployment"):
        spec = pod_spec(deployment)
        annotations = accounts[spec["serviceAccountName"]]["metadata"].get("annotations") or {}
        role = {
            "upload": "UploadRoleArn",
            "upload-worker": "UploadRoleArn",
            "processor": "ProcessorRoleArn",
        }.get(component(deployment))
        assert annotations.get(irsa) == (outputs[role] if role else None), component(deployment)
        (container,) = spec["containers"]
        if env_value(container, "S3_BUCKET") is not None:
            assert env_value(container, "S3_BUCKET") == outputs["BucketName"]
            assert env_value(container, "JOBS_QUEUE_URL") == outputs["JobsQueueUrl"]
        assert container["image"].startswith(outputs["Registry"] + "/rising-stars-")
    (trigger,) = of_kind(objects, "TriggerAuthentication")
    assert trigger["spec"]["podIdentity"]["roleArn"] == outputs["KedaRoleArn"]

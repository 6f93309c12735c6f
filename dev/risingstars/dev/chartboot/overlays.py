"""The boots chart-boot runs: its own production-shaped values, and each overlay of the chart
that can run on one machine, with what exists in the cluster before the release."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import yaml

from risingstars.dev import aws_stack, rds_bootstrap
from risingstars.dev.chartboot.cluster import External, Overlay
from risingstars.dev.chartboot.manifests import CHART, ROOT, kustomize

HERE = Path(__file__).parent / "values"
RDS = "rds.chartboot.test"
AWS = "aws.chartboot.test"

# deploy.md's database preparation (deploy/rds-bootstrap.sql): one role and one schema per
# service. chart-boot runs it statement by statement as the superuser; tests/deploy runs the file
# with psql as a non-superuser master, as on RDS. The passwords are unused (trust auth).
_PER_SERVICE_ROLES = rds_bootstrap.statements(
    {"auth_password": "chart-boot", "upload_password": "chart-boot"}
)


def _database_secret() -> list[dict]:
    """`kubectl create secret generic rising-stars-database` as docs/deploy.md shows it."""
    base = f"{RDS}:5432/risingstars"
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "rising-stars-database"},
            "stringData": {
                "auth-url": f"postgresql://rs_auth@{base}",
                "upload-url": f"postgresql://rs_upload@{base}",
            },
        }
    ]


def _externals(aws_real_port: int | None = None, rds_address: str | None = None) -> list[External]:
    return [
        External([RDS], 5432, "postgres", address=rds_address),
        External([AWS], 4566, "moto", None, aws_real_port),
    ]


def boot() -> Overlay:
    return Overlay(
        name="boot",
        values=[HERE / "boot.yaml"],
        externals=_externals(),
        existing=_database_secret,
        database_sql=_PER_SERVICE_ROLES,
        terminate=True,
    )


def eks() -> Overlay:
    return Overlay(
        name="eks",
        values=[CHART / "values-eks.yaml", HERE / "eks-endpoints.yaml"],
        # The real endpoints are HTTPS (443), which the NetworkPolicies allow.
        # RDS in the database subnets values-eks.yaml admits (10.0.16.0/22).
        externals=_externals(aws_real_port=443, rds_address="10.0.16.10"),
        # The VPC's CIDR in values-eks.yaml (the ALB and RDS are in it).
        subnet="10.0.0.0/16",
        existing=_database_secret,
        database_sql=_PER_SERVICE_ROLES,
    )


def _kind_deps() -> list[dict]:
    """k8s/kind/deps as kustomize renders it: its Secrets, its Services (their pods are the
    local PostgreSQL and moto) and the NetworkPolicies that admit the release to them."""
    kinds = ("Secret", "Service", "NetworkPolicy")
    return [o for o in kustomize(ROOT / "k8s" / "kind" / "deps") if o["kind"] in kinds]


def kind() -> Overlay:
    return Overlay(
        name="kind",
        values=[CHART / "values-kind.yaml"],
        externals=[
            External(["postgres"], 5432, "postgres", service="postgres"),
            External(["localstack"], 4566, "moto", service="localstack"),
        ],
        existing=_kind_deps,
        ingress_namespace="traefik",  # k8s/kind installs Traefik there
        # k8s/kind/deps' PostgreSQL: POSTGRES_USER and POSTGRES_DB risingstars, trusted.
        database_sql=[
            ("postgres", "CREATE ROLE risingstars LOGIN"),
            ("postgres", "CREATE DATABASE risingstars OWNER risingstars"),
        ],
    )


def eks_stack() -> Overlay:
    """template -> values -> pods: deploy/aws/rising-stars.yaml deployed on moto, its outputs
    as the values file (python -m risingstars.dev.aws_stack values) over values-eks.yaml, then
    the eks boot of those values. Run on request (make chart-boot OVERLAYS=eks-stack): the
    template's deployment and its rendering are tested in tests/deploy."""
    work = Path(tempfile.mkdtemp(prefix="rscb-stack-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    stack_values = work / "values-stack.yaml"
    outputs = aws_stack.deploy_on_moto(work)
    stack_values.write_text(yaml.safe_dump(aws_stack.values_from_outputs(outputs)))
    overlay = eks()
    overlay.name = "eks-stack"
    overlay.values = [CHART / "values-eks.yaml", stack_values, HERE / "eks-endpoints.yaml"]
    return overlay


ALL = {"boot": boot, "kind": kind, "eks": eks}
# Boots run only when named.
ON_REQUEST = {"eks-stack": eks_stack}

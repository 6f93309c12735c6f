"""`make preflight VALUES='-f charts/rising-stars/values-eks.yaml -f values-stack.yaml'`: before a
first install, checks read-only that the cluster and the AWS account hold what the release will
need, as the chart renders it with those values. Each missing item is one line saying how to
fix it; the exit status is 1 when anything is missing.

What is needed follows from the rendered manifests, not from a list kept apart: an ALB Ingress
needs the AWS Load Balancer Controller and the namespace's readiness-gate label, an HPA needs
metrics-server, a ScaledObject KEDA's CRDs, every secretKeyRef its Secret and key, every IRSA
annotation a role whose trust names that ServiceAccount, every queue URL and the bucket must
answer. Kubernetes is read with GETs only (a kubeconfig's server, bearer token or client
certificate, CA); AWS with Get/Head/List calls through the standard credential chain.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import ssl
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

from risingstars.dev.chartboot.manifests import render

ALB_CONTROLLER_CRD = "targetgroupbindings.elbv2.k8s.aws"
READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"
METRICS_API = "v1beta1.metrics.k8s.io"
IRSA = "eks.amazonaws.com/role-arn"
# The CRD each custom kind of the chart needs, and who installs it.
CRDS = {
    "ScaledObject": (
        "scaledobjects.keda.sh",
        "install KEDA 2.13+ (helm install keda kedacore/keda)",
    ),
    "TriggerAuthentication": (
        "triggerauthentications.keda.sh",
        "install KEDA 2.13+ (helm install keda kedacore/keda)",
    ),
    "ServiceMonitor": (
        "servicemonitors.monitoring.coreos.com",
        "install kube-prometheus-stack or set metrics.serviceMonitor.enabled=false",
    ),
    "PrometheusRule": (
        "prometheusrules.monitoring.coreos.com",
        "install kube-prometheus-stack or set metrics.prometheusRule.enabled=false",
    ),
}


@dataclasses.dataclass(frozen=True)
class Finding:
    ok: bool
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"ok    {self.what}" if self.ok else f"FAIL  {self.what}: {self.fix}"


class Kube:
    """GETs against the API server; 404 is None."""

    def __init__(self, server: str, *, token: str | None = None, verify=True, cert=None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=server, headers=headers, verify=verify, cert=cert, timeout=10
        )

    @classmethod
    def from_kubeconfig(cls, path: Path, context: str | None = None) -> Kube:
        config = yaml.safe_load(path.read_text())
        name = context or config["current-context"]
        ctx = next(c["context"] for c in config["contexts"] if c["name"] == name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == ctx["user"])
        files = Path(tempfile.mkdtemp(prefix="rs-preflight-"))

        def materialise(data_key: str, file_key: str, owner: dict) -> str | None:
            if owner.get(data_key):
                target = files / data_key
                target.write_bytes(base64.b64decode(owner[data_key]))
                target.chmod(0o600)
                return str(target)
            return owner.get(file_key)

        ca = materialise("certificate-authority-data", "certificate-authority", cluster)
        verify: ssl.SSLContext | bool = not cluster.get("insecure-skip-tls-verify", False)
        if ca and verify:
            verify = ssl.create_default_context(cafile=ca)
        cert_file = materialise("client-certificate-data", "client-certificate", user)
        key_file = materialise("client-key-data", "client-key", user)
        cert = (cert_file, key_file) if cert_file and key_file else None
        return cls(cluster["server"], token=user.get("token"), verify=verify, cert=cert)

    def get(self, path: str) -> dict | None:
        response = self.http.get(path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()


def _kinds(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def _pod_specs(objects: list[dict]) -> Iterator[dict]:
    for obj in objects:
        if obj["kind"] in {"Deployment", "Job"}:
            yield obj["spec"]["template"]["spec"]


def check_cluster(kube: Kube, objects: list[dict], namespace: str) -> Iterator[Finding]:
    crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
    ingresses = _kinds(objects, "Ingress")
    alb = any(i["spec"].get("ingressClassName") == "alb" for i in ingresses)
    if alb:
        found = kube.get(crd + ALB_CONTROLLER_CRD) is not None
        yield Finding(
            found,
            "AWS Load Balancer Controller (ingress class alb)",
            "install it (helm install aws-load-balancer-controller eks/aws-load-balancer-"
            "controller -n kube-system) with its IRSA role; the Ingress stays without an ALB",
        )
    ns = kube.get(f"/api/v1/namespaces/{namespace}")
    yield Finding(
        ns is not None,
        f"namespace {namespace}",
        f"kubectl create namespace {namespace} (and create its Secrets before the install)",
    )
    if alb:
        labels = (ns or {}).get("metadata", {}).get("labels") or {}
        yield Finding(
            labels.get(READINESS_GATE_LABEL) == "enabled",
            f"namespace {namespace} label {READINESS_GATE_LABEL}=enabled",
            f"kubectl label namespace {namespace} {READINESS_GATE_LABEL}=enabled, so rollouts "
            "wait for the ALB's health checks",
        )
    if _kinds(objects, "HorizontalPodAutoscaler"):
        service = kube.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{METRICS_API}")
        available = any(
            c.get("type") == "Available" and c.get("status") == "True"
            for c in ((service or {}).get("status") or {}).get("conditions", [])
        )
        yield Finding(
            available,
            "metrics-server (the HPAs' CPU metrics)",
            "install metrics-server (the EKS add-on or its helm chart); without it every HPA "
            "reports <unknown> and never scales",
        )
    for kind, (name, fix) in CRDS.items():
        if _kinds(objects, kind):
            yield Finding(kube.get(crd + name) is not None, f"CRD {name} ({kind})", fix)
    yield from _secrets(kube, objects, namespace)
    for scraper in _scraper_namespaces(objects):
        yield Finding(
            kube.get(f"/api/v1/namespaces/{scraper}") is not None,
            f"Prometheus namespace {scraper} (networkPolicy.metricsScraperPeers)",
            "set networkPolicy.metricsScraperPeers to the namespace Prometheus runs in, or "
            "the NetworkPolicies block every scrape",
        )


def _secrets(kube: Kube, objects: list[dict], namespace: str) -> Iterator[Finding]:
    rendered = {s["metadata"]["name"] for s in _kinds(objects, "Secret")}
    wanted: dict[str, set[str]] = {}
    for spec in _pod_specs(objects):
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            for env in container.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref["name"] not in rendered and not ref.get("optional"):
                    wanted.setdefault(ref["name"], set()).add(ref["key"])
    for name, keys in sorted(wanted.items()):
        secret = kube.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if secret is None:
            yield Finding(
                False,
                f"Secret {namespace}/{name}",
                f"create it with the keys {', '.join(sorted(keys))} (docs/deploy.md, "
                "'Store the URLs in a Secret'); the pods cannot start without it",
            )
            continue
        present = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
        for key in sorted(keys):
            yield Finding(
                key in present,
                f"Secret {namespace}/{name} key {key}",
                f"add the key {key} to the Secret (kubectl -n {namespace} create secret generic "
                f"{name} --from-literal={key}=... --dry-run=client -o yaml | kubectl apply -f -)",
            )


def _scraper_namespaces(objects: list[dict]) -> set[str]:
    """The namespaces the scrape policy admits: the processor's policy lets in only the
    scrapers (by namespace), the operator and the test pod (tests/chart checks that)."""
    if not _kinds(objects, "ServiceMonitor"):
        return set()
    names = set()
    for policy in _kinds(objects, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"].get("matchLabels") or {}
        if selector.get("app.kubernetes.io/component") != "processor":
            continue
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                labels = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
                if "kubernetes.io/metadata.name" in labels:
                    names.add(labels["kubernetes.io/metadata.name"])
    return names


def _queue_urls(objects: list[dict]) -> dict[str, str]:
    urls = {}
    for spec in _pod_specs(objects):
        for container in spec.get("containers", []):
            for env in container.get("env", []):
                if env["name"].endswith("_QUEUE_URL") and env.get("value"):
                    urls[env["name"]] = env["value"]
    return urls


def _env_value(objects: list[dict], name: str) -> str | None:
    for spec in _pod_specs(objects):
        for container in spec.get("containers", []):
            for env in container.get("env", []):
                if env["name"] == name and env.get("value"):
                    return env["value"]
    return None


def _roles(objects: list[dict], namespace: str, keda_account: str) -> Iterator[tuple[str, str]]:
    """(role ARN, the ServiceAccount that assumes it): each annotated ServiceAccount's, and
    KEDA's role (processor.autoscaling.keda.roleArn), assumed by KEDA's operator."""
    for account in _kinds(objects, "ServiceAccount"):
        arn = (account["metadata"].get("annotations") or {}).get(IRSA)
        if arn:
            yield arn, f"system:serviceaccount:{namespace}:{account['metadata']['name']}"
    for trigger in _kinds(objects, "TriggerAuthentication"):
        arn = (trigger["spec"].get("podIdentity") or {}).get("roleArn")
        if arn:
            yield arn, f"system:serviceaccount:{keda_account}"


def check_aws(
    session, objects: list[dict], namespace: str, keda_account: str = "keda:keda-operator"
) -> Iterator[Finding]:
    """`session`: a boto3 Session (or anything with .client(name))."""
    from botocore.exceptions import ClientError

    sqs, s3, iam = session.client("sqs"), session.client("s3"), session.client("iam")
    for name, url in sorted(_queue_urls(objects).items()):
        try:
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            yield Finding(True, f"{name} {url}")
        except ClientError as exc:
            yield Finding(
                False,
                f"{name} {url}",
                f"{exc.response['Error'].get('Code')}: deploy deploy/aws/rising-stars.yaml and "
                "set the values from its outputs (python -m risingstars.dev.aws_stack values)",
            )
    bucket = _env_value(objects, "S3_BUCKET")
    if bucket:
        try:
            s3.head_bucket(Bucket=bucket)
            yield Finding(True, f"bucket {bucket}")
        except ClientError as exc:
            yield Finding(
                False,
                f"bucket {bucket}",
                f"{exc.response['Error'].get('Code')}: create it with the stack "
                "(deploy/aws/rising-stars.yaml) or set aws.s3Bucket to yours",
            )
    for arn, subject in _roles(objects, namespace, keda_account):
        what = f"IRSA role {arn} for {subject}"
        try:
            role = iam.get_role(RoleName=arn.rsplit("/", 1)[-1])["Role"]
        except ClientError as exc:
            yield Finding(
                False,
                what,
                f"{exc.response['Error'].get('Code')}: create the role (the stack's roles) or "
                f"fix the {IRSA} annotation",
            )
            continue
        trust = role["AssumeRolePolicyDocument"]
        if isinstance(trust, str):
            trust = json.loads(urllib.parse.unquote(trust))
        yield Finding(
            subject in json.dumps(trust),
            what,
            f"the role's trust policy does not name {subject}: add it to the StringEquals "
            "condition on the OIDC provider's :sub key",
        )


def run(
    values: list[Path], kube: Kube, session, release: str, namespace: str, keda_account: str
) -> list[Finding]:
    objects = render(values, release=release, namespace=namespace)
    return [
        *check_cluster(kube, objects, namespace),
        *check_aws(session, objects, namespace, keda_account),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m risingstars.dev.preflight")
    parser.add_argument("-f", "--values", action="append", type=Path, default=[])
    parser.add_argument("--release", default="rising-stars")
    parser.add_argument("-n", "--namespace", default="rising-stars")
    parser.add_argument(
        "--kubeconfig", type=Path, default=Path(os.environ.get("KUBECONFIG", "~/.kube/config"))
    )
    parser.add_argument("--context")
    parser.add_argument(
        "--keda-account",
        default="keda:keda-operator",
        help="NAMESPACE:SERVICEACCOUNT of KEDA's operator (it assumes keda.roleArn)",
    )
    args = parser.parse_args(argv)
    import boto3

    kube = Kube.from_kubeconfig(args.kubeconfig.expanduser(), args.context)
    findings = run(
        args.values, kube, boto3.Session(), args.release, args.namespace, args.keda_account
    )
    for finding in findings:
        print(finding.line())
    missing = [f for f in findings if not f.ok]
    print(f"{len(findings) - len(missing)} ok, {len(missing)} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

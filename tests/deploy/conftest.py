"""tests/deploy's fixtures: the stack on moto, kmock's Kubernetes emulator, the chart's tools."""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
from pathlib import Path

import aiohttp.web
import boto3
import kmock
import pytest
from chart.rendering import ROOT
from deploy.conftest_helpers import OIDC, STACK

from risingstars.dev import aws_stack, charttools, kube_api


@pytest.fixture(scope="session")
def tool_bin() -> Path:
    """helm and kubectl (charts/tools.sh)."""
    return charttools.bin_dir()


@pytest.fixture(scope="session")
def tool_bin_with_checkov() -> Path:
    """charts/tools.sh with checkov (its own virtualenv), as make chart-check installs it."""
    done = subprocess.run(
        ["bash", str(ROOT / "charts" / "tools.sh")], check=True, capture_output=True, text=True
    )
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def stack(moto_url):
    """deploy/aws/rising-stars.yaml deployed on moto's CloudFormation (CreateStack over HTTP):
    (client keywords, the stack's outputs)."""
    kw = {"endpoint_url": moto_url, "region_name": "us-east-1"}
    cloudformation = boto3.client("cloudformation", **kw)
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=aws_stack.TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": "OidcProvider", "ParameterValue": OIDC}],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    (described,) = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    return kw, aws_stack.stack_outputs(cloudformation, STACK)


class _Emulator(kube_api.Emulator):
    """kube_api's emulator, answering GET /api/v1/namespaces/NAME itself (kmock's path parser
    takes NAME for a namespace and finds no resource)."""

    namespaces: dict[str, dict]

    async def _handle(self, request):
        match = re.fullmatch(r"/api/v1/namespaces/([^/]+)", request.url.path)
        if match and request.method.value == "GET":
            found = self.namespaces.get(match[1])
            if found is None:
                return aiohttp.web.json_response({"kind": "Status", "code": 404}, status=404)
            return aiohttp.web.json_response(found)
        return await super()._handle(request)


@pytest.fixture
def kube_emulator():
    """kmock's Kubernetes emulator on loopback, in a thread of its own: (emulator, URL)."""
    loop = asyncio.new_event_loop()
    started: dict = {}
    ready = threading.Event()
    stop = asyncio.Event()

    async def serve():
        async with _Emulator() as api, kmock.Server(api, port=0):
            api.namespaces = {}
            info = kmock.ResourceInfo
            api.resources["v1/secrets"] = info(
                kind="Secret", singular="secret", namespaced=True, verbs={"get", "create"}
            )
            api.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = info(
                kind="CustomResourceDefinition",
                singular="customresourcedefinition",
                namespaced=False,
                verbs={"get", "create"},
            )
            api.resources["apiregistration.k8s.io/v1/apiservices"] = info(
                kind="APIService", singular="apiservice", namespaced=False, verbs={"get", "create"}
            )
            started.update(api=api, url=str(api.url))
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the emulator did not start"
    yield started["api"], started["url"]
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)

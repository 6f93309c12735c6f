"""A Kubernetes API for the operator's tests and benchmark: kmock's emulator with the resources
the operator and its tests use declared.

`python -m risingstars.dev.kube_api PORT [--keep N]` serves on 127.0.0.1:PORT until killed (the
benchmark runs it in a process of its own: an API server does not share the operator's
interpreter). kmock records every request and matches each new one against all of them, which
is right for tests and quadratic for a benchmark: `--keep N` keeps only the last N.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import uuid
from typing import Any

import kmock

QUEUESCALERS = "risingstars.io/v1alpha1/queuescalers"
DEPLOYMENTS = "apps/v1/deployments"
PODS = "v1/pods"
EVENTS = "v1/events"


class Emulator(kmock.KubernetesEmulator):
    """kmock's Kubernetes emulator, plus names from `metadata.generateName` (kopf's Events
    have no name of their own: the API server makes one up)."""

    async def _handle(self, request: kmock.Request) -> Any:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:10]}"
        return await super()._handle(request)


def declare(api: kmock.KubernetesEmulator) -> None:
    """The resources the operator reads and writes, and what its tests create."""
    info = kmock.ResourceInfo
    api.resources[QUEUESCALERS] = info(
        kind="QueueScaler",
        singular="queuescaler",
        namespaced=True,
        verbs={"list", "watch", "get", "create", "patch", "delete"},
        subresources={"status"},
    )
    api.resources[DEPLOYMENTS] = info(
        kind="Deployment",
        singular="deployment",
        namespaced=True,
        verbs={"list", "watch", "get", "create", "patch"},
        subresources={"scale", "status"},
    )
    api.resources[PODS] = info(
        kind="Pod",
        singular="pod",
        namespaced=True,
        verbs={"list", "get", "create", "patch", "delete"},
    )
    api.resources[EVENTS] = info(
        kind="Event", singular="event", namespaced=True, verbs={"list", "create"}
    )
    declare_discovery(api)


def declare_discovery(api: kmock.KubernetesEmulator) -> None:
    """What kopf discovers before it watches anything: namespaces and CRDs (it never reads
    them while scanning is off, but watches nothing unless they are declared)."""
    info = kmock.ResourceInfo
    api.resources["v1/namespaces"] = info(
        kind="Namespace", singular="namespace", namespaced=False, verbs={"list", "watch", "get"}
    )
    api.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = info(
        kind="CustomResourceDefinition",
        singular="customresourcedefinition",
        namespaced=False,
        verbs={"list", "watch", "get"},
    )


async def serve(port: int, keep: int | None = None) -> None:
    async with Emulator() as api, kmock.Server(api, port=port):
        if keep is not None:
            api._requests = collections.deque(maxlen=keep)  # see the module's docstring
        declare(api)
        print(f"serving {api.url}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m risingstars.dev.kube_api")
    parser.add_argument("port", type=int)
    parser.add_argument("--keep", type=int, help="requests kept for matching (default: all)")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.keep))

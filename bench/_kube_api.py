"""A Kubernetes API for the operator benchmark: kmock's emulator in a process of its own (an API
server does not share the operator's interpreter), with resources the operator uses declared.

kmock records every request and matches each new one against all of them, which is right for
tests and quadratic for a benchmark; here it keeps only the last few.

`python -m bench._kube_api PORT` serves on 127.0.0.1:PORT until killed.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import uuid

import kmock


class Emulator(kmock.KubernetesEmulator):
    """Names objects from metadata.generateName (kopf's Events), as the API server does."""

    async def _handle(self, request: kmock.Request):
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:10]}"
        return await super()._handle(request)


def declare(api: kmock.KubernetesEmulator) -> None:
    info = kmock.ResourceInfo
    api.resources["risingstars.io/v1alpha1/queuescalers"] = info(
        kind="QueueScaler",
        namespaced=True,
        verbs={"list", "watch", "patch", "create"},
        subresources={"status"},
    )
    api.resources["apps/v1/deployments"] = info(
        kind="Deployment",
        namespaced=True,
        verbs={"get", "create", "patch"},
        subresources={"scale"},
    )
    api.resources["v1/events"] = info(kind="Event", namespaced=True, verbs={"create"})
    api.resources["v1/namespaces"] = info(kind="Namespace", namespaced=False, verbs={"list"})
    api.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = info(
        kind="CustomResourceDefinition", namespaced=False, verbs={"list"}
    )


async def serve(port: int) -> None:
    async with Emulator() as api, kmock.Server(api, port=port):
        api._requests = collections.deque(maxlen=32)  # see the module's docstring
        declare(api)
        print(f"serving {api.url}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))

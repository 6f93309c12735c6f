"""A Kubernetes API server for pods that talk to one (the operator): kmock's emulator over
HTTPS on the `kubernetes` Service's address, its certificate in every service account token
volume (ca.crt), holding the release's objects as the cluster would (Deployments, the running
pods with their IPs, custom resources), so the operator logs in, watches and writes status.
RBAC and admission are not emulated (tests/operator checks the Role)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from risingstars.dev.chartboot.manifests import CHART
from risingstars.dev.kube_api import Emulator, declare_discovery

_CORE = {
    "apps/v1/deployments": ("Deployment", "deployment", {"scale", "status"}),
    "v1/pods": ("Pod", "pod", set()),
    "v1/events": ("Event", "event", set()),
    "v1/services": ("Service", "service", set()),
}


def self_signed(addr: str, names: list[str], directory: Path) -> tuple[Path, Path]:
    """A certificate for the server's address and names that is its own CA (ca.crt)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = datetime.datetime.now(datetime.UTC)
    sans = [x509.IPAddress(ipaddress.ip_address(addr)), *(x509.DNSName(n) for n in names)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    crt, pem = directory / "apiserver.crt", directory / "apiserver.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return crt, pem


def _resources(api: kmock.KubernetesEmulator, crds: list[dict]) -> None:
    info = kmock.ResourceInfo
    verbs = {"list", "watch", "get", "create", "patch", "update", "delete"}
    for path, (kind, singular, subs) in _CORE.items():
        api.resources[path] = info(
            kind=kind, singular=singular, namespaced=True, verbs=verbs, subresources=subs
        )
    declare_discovery(api)
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            api.resources[f"{spec['group']}/{version['name']}/{spec['names']['plural']}"] = info(
                kind=spec["names"]["kind"],
                singular=spec["names"]["singular"],
                namespaced=spec["scope"] == "Namespaced",
                verbs=verbs,
                subresources=set(version.get("subresources", {})),
            )


def chart_crds(chart: Path = CHART) -> list[dict]:
    return [
        d
        for p in sorted((chart / "crds").glob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text())
        if d
    ]


def _path(obj: dict, namespace: str) -> str:
    group_version = obj["apiVersion"]
    plural = {"Deployment": "deployments", "Pod": "pods", "Service": "services"}.get(obj["kind"])
    if plural is None:
        crd = next(c for c in chart_crds() if c["spec"]["names"]["kind"] == obj["kind"])
        plural = crd["spec"]["names"]["plural"]
    prefix = "/api" if "/" not in group_version else "/apis"
    return f"{prefix}/{group_version}/namespaces/{namespace}/{plural}"


class APIServer:
    """kmock on https://addr:443 in the node namespace, run by its own thread and loop."""

    def __init__(self, addr: str, names: list[str], workdir: Path, namespace: str) -> None:
        self.addr = addr
        self.namespace = namespace
        self.cert, self.key = self_signed(addr, names, workdir)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.api: kmock.KubernetesEmulator | None = None
        self.session: aiohttp.ClientSession | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="apiserver")
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the API server emulator did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        self._stop = asyncio.Event()
        trust = ssl.create_default_context(cafile=str(self.cert))
        async with Emulator() as api:
            _resources(api, chart_crds())
            self.api = api
            runner = aiohttp.web.ServerRunner(aiohttp.web.Server(api))
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, self.addr, 443, ssl_context=ctx)
            await site.start()
            # The harness calls it as any client would (not through kmock.Server, whose
            # process-wide DNS interception does not stack across concurrent boots).
            connector = aiohttp.TCPConnector(ssl=trust)
            async with aiohttp.ClientSession(f"https://{self.addr}:443", connector=connector) as s:
                self.session = s
                self._ready.set()
                await self._stop.wait()
            await site.stop()

    def call(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def create(self, obj: dict) -> None:
        body = {**obj, "metadata": dict(obj["metadata"])}
        meta = body["metadata"]
        meta["namespace"] = self.namespace
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta.setdefault("resourceVersion", "1")
        meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

        async def post() -> None:
            response = await self.session.post(_path(body, self.namespace), json=body)
            if response.status >= 300:
                raise RuntimeError(f"API emulator: {response.status} {await response.text()}")

        self.call(post())

    def get(self, obj: dict) -> dict | None:
        async def fetch() -> dict | None:
            url = f"{_path(obj, self.namespace)}/{obj['metadata']['name']}"
            response = await self.session.get(url)
            return await response.json() if response.status == 200 else None

        return self.call(fetch())

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

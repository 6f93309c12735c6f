"""A private cluster network made of network namespaces: one "node" namespace holding a
bridge, and one namespace per pod joined to it by a veth pair, each with its own IP and its own
/etc/netns/<name>/hosts (what `ip netns exec` shows the pod as /etc/hosts: cluster DNS).

Nothing touches the machine's own network: every address lives inside namespaces made here,
all named with PREFIX + the owning process id, so a later run removes what a crashed one left.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil

PREFIX = "rscb"
# Work directories (pod volumes, logs); not /tmp, which pods mount their own /tmp over.
WORK_ROOT = "/var/tmp"  # noqa: S108
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def available() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "chart-boot needs root (ip netns, veth pairs, mount namespaces)"
    if shutil.which("ip") is None:
        return "chart-boot needs iproute2's `ip` (bash .ci/install installs it)"
    probe = f"{PREFIX}-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], check=False)
    return None


def ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


def _delete_namespace(name: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
    for pid in pids.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)


def clean_stale() -> list[str]:
    """Remove namespaces (and their /etc/netns dirs, and processes still inside) of runs whose
    process is gone."""
    names = set()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names.update(line.split()[0] for line in listed.splitlines() if line.strip())
    if Path("/etc/netns").is_dir():
        names.update(p.name for p in Path("/etc/netns").iterdir())
    # Work directories of the harness (/var/tmp/rscb-<pid>-*: pod volumes, logs).
    for path in Path(WORK_ROOT).glob(f"{PREFIX}-*"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
    removed = []
    for name in sorted(names):
        parts = name.split("-")
        if len(parts) < 3 or parts[0] != PREFIX or not parts[1].isdigit():
            continue
        if psutil.pid_exists(int(parts[1])):
            continue
        _delete_namespace(name)
        removed.append(name)
    return removed


class Network:
    """The node namespace with its bridge, plus pod namespaces on it."""

    def __init__(self, tag: str = "", subnet: str = "10.77.0.0/16") -> None:
        self.subnet = ipaddress.ip_network(subnet)
        self.prefix = f"{PREFIX}-{os.getpid()}{'-' + tag if tag else ''}"
        self.node = f"{self.prefix}-node"
        self.namespaces: list[str] = []
        self._hosts = iter(self.subnet.hosts())
        self.node_ip = str(next(self._hosts))  # the node's own address: the router's too
        self._veths = 0

    def up(self) -> None:
        self._add(self.node)
        ip("link", "set", "lo", "up", ns=self.node)
        ip("link", "add", "br0", "type", "bridge", ns=self.node)
        ip("addr", "add", f"{self.node_ip}/{self.subnet.prefixlen}", "dev", "br0", ns=self.node)
        ip("link", "set", "br0", "up", ns=self.node)

    def _add(self, name: str) -> None:
        self.namespaces.append(name)
        ip("netns", "add", name)

    def address(self) -> str:
        return str(next(self._hosts))

    def node_address(self, addr: str | None = None) -> str:
        """An extra address on the node's bridge (a Service's cluster IP, an external endpoint),
        the next free one unless the caller names it (inside the subnet)."""
        addr = addr or self.address()
        ip("addr", "add", f"{addr}/32", "dev", "br0", ns=self.node)
        return addr

    def pod(self, short: str, addr: str, hosts: str) -> str:
        """A namespace for one pod, with address `addr` (from address()); returns its name."""
        self._veths += 1
        name = f"{self.prefix}-{short}"[:60]
        self._add(name)
        veth = f"v{self._veths}"
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name, ns=self.node)
        ip("link", "set", veth, "master", "br0", "up", ns=self.node)
        ip("link", "set", "lo", "up", ns=name)
        ip("addr", "add", f"{addr}/{self.subnet.prefixlen}", "dev", "eth0", ns=name)
        ip("link", "set", "eth0", "up", ns=name)
        ip("route", "add", "default", "via", self.node_ip, ns=name)
        etc = Path("/etc/netns") / name
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(hosts)
        # No resolver: every name the pod may use is in its hosts file, as cluster DNS would
        # answer it; anything else fails fast instead of leaving the machine.
        (etc / "resolv.conf").write_text("options timeout:1 attempts:1\n")
        return name

    def down(self) -> None:
        for name in reversed(self.namespaces):
            _delete_namespace(name)
        self.namespaces.clear()


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Move the calling thread into network namespace `name` (and back afterwards). Threads and
    processes started meanwhile from this thread are born in it."""
    with open(f"/run/netns/{name}") as target, open("/proc/thread-self/ns/net") as home:
        if _libc.setns(target.fileno(), _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
        try:
            yield
        finally:
            if _libc.setns(home.fileno(), _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original namespace")

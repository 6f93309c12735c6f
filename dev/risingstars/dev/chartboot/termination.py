"""Pod deletion with a request in flight: for each pod, a request its Service received during
the flow is sent again straight to it, its body trickled across the preStop hook and the
SIGTERM; the pod must answer it and end within terminationGracePeriodSeconds."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable

# Ending on the SIGTERM itself (uvicorn re-raises it once drained) is a clean stop too: only a
# SIGKILL at the end of the grace period, or an error exit, is not.
CLEAN_EXITS = (0, -signal.SIGTERM, 128 + signal.SIGTERM)


def delete_all(pods: list, replay_for: Callable) -> tuple[dict, list[str]]:
    """Delete `pods` at once; (per-pod results, problems)."""
    results: dict[str, dict] = {}
    threads = [
        threading.Thread(target=_delete_one, args=(pod, replay_for(pod), results)) for pod in pods
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    problems = []
    for pod in pods:
        r = results[pod.name]
        for name, c in r["term"]["containers"].items():
            if c["killed"] or c["exit"] not in CLEAN_EXITS:
                problems.append(
                    f"{pod.name}/{name}: exit {c['exit']} killed={c['killed']} "
                    f"after grace {r['term']['grace']} s"
                )
        inflight = r.get("inflight")
        if inflight and not inflight.startswith("HTTP "):
            problems.append(f"{pod.name}: in-flight request lost: {inflight}")
        if inflight and inflight.startswith("HTTP 5"):
            problems.append(f"{pod.name}: in-flight request failed: {inflight}")
    return results, problems


def _delete_one(pod, replay, results: dict) -> None:
    out: dict = {}
    results[pod.name] = out
    holder: dict = {}
    t = None
    if replay:
        (method, path, headers, body), target = replay
        pre = max(
            (
                c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
                for c in pod.spec.containers
            ),
            default=0,
        )
        started = threading.Event()
        t = threading.Thread(
            target=_trickle,
            args=(target, method, path, headers, body, pre + 1.5, started, holder),
        )
        t.start()
        started.wait(5)
    out["term"] = pod.terminate()
    if t is not None:
        t.join()
        out["inflight"] = holder.get("result", "no result")


def _trickle(target, method, path, headers, body, seconds, started, holder) -> None:
    """A request whose body arrives slowly over `seconds` (a slow client's pace, not a wait for
    anything): in flight across the preStop hook and the SIGTERM."""
    try:
        sock = socket.create_connection(target, timeout=60)
        head = [f"{method} {path} HTTP/1.1"]
        head += [
            f"{k}: {v}"
            for k, v in headers.items()
            if k.lower() not in ("content-length", "connection")
        ]
        head += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        sock.sendall("\r\n".join(head).encode())
        started.set()
        chunks = max(1, int(seconds / 0.25))
        size = max(1, -(-len(body) // chunks))
        for i in range(0, len(body), size):
            sock.sendall(body[i : i + size])
            time.sleep(seconds / chunks)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        status = data.split(b"\r\n", 1)[0].decode(errors="replace")
        holder["result"] = (
            status.replace("HTTP/1.1 ", "HTTP ")
            if status
            else "connection closed without a response"
        )
    except OSError as exc:
        holder["result"] = f"error: {exc}"
    finally:
        started.set()

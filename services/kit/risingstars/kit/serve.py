"""Run an ASGI app under uvicorn with Kubernetes-friendly shutdown.

On SIGTERM readiness fails at once while requests are still served for `drain_seconds` (the
endpoint's removal from Services and the load balancer races the signal); then uvicorn stops
accepting and waits up to `shutdown_timeout_seconds` for in-flight requests.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from risingstars.kit.settings import HTTPSettings


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self.lifecycle = app.state.lifecycle
        self.drain_seconds = drain_seconds
        self._timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self.drain_seconds <= 0 or self._timer is not None:
            # Ctrl-C, a second signal, or no drain configured: stop now.
            super().handle_exit(sig, frame)
            return
        self.lifecycle.draining = True
        self._timer = threading.Timer(self.drain_seconds, super().handle_exit, (sig, frame))
        self._timer.daemon = True
        self._timer.start()


def serve(app: FastAPI, settings: HTTPSettings) -> None:
    config = uvicorn.Config(
        app,
        host="0.0.0.0",
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_keep_alive=settings.keepalive_seconds,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
    )
    DrainingServer(config, app, settings.drain_seconds).run()

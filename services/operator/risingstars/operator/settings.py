"""The operator's configuration, read once from the environment at start-up."""

from __future__ import annotations

import dataclasses

from risingstars.kit import settings as kit_settings
from risingstars.kit.settings import AWSSettings


@dataclasses.dataclass(frozen=True)
class Settings(AWSSettings):
    log_level: str = "info"
    # Prometheus metrics (the operator's own: backlog, replicas, scale events, errors, latency).
    metrics_port: int = 8080
    # /healthz (liveness) and /readyz, http://0.0.0.0:HEALTH_PORT (health.py).
    health_port: int = 8081
    # Namespaces whose QueueScalers are served; empty means the whole cluster (which needs a
    # ClusterRole; the chart serves its own namespace with a Role).
    watch_namespaces: tuple[str, ...] = ()
    # The pod's name (downward API), shown as the reporting instance of our Events.
    pod_name: str | None = None

    def validate(self) -> None:
        for port in (self.metrics_port, self.health_port):
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is out of range")
        if self.metrics_port == self.health_port:
            raise ValueError("METRICS_PORT and HEALTH_PORT must differ")


def load() -> Settings:
    return kit_settings.load(Settings)

"""`python gateway_main.py PORT AUTH_URL UPLOAD_URL`: make run's gateway as a process of its own,
so the fault suite can restart the services behind it."""

from __future__ import annotations

import sys

import uvicorn

from risingstars.dev.gateway import Gateway
from risingstars.dev.run import ROUTES


def main(port: int, auth: str, upload: str) -> None:
    targets = {"auth": auth, "upload": upload}
    # The API's routes only: the fault suite runs no web component.
    routes = [(prefix, targets[service]) for prefix, service in ROUTES if service in targets]
    uvicorn.run(Gateway(routes), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])

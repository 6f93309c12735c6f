"""A minimal service for the graceful-shutdown test: /slow answers after the given seconds."""

import asyncio

from risingstars.kit import logs
from risingstars.kit.app import create_app
from risingstars.kit.serve import serve
from risingstars.kit.settings import HTTPSettings, load

app = create_app("drain-example")


@app.get("/slow")
async def slow(seconds: float = 1.0) -> dict:
    await asyncio.sleep(seconds)  # stands for a request in flight
    return {"done": True}


if __name__ == "__main__":
    settings = load(HTTPSettings)
    logs.setup("drain-example", settings.log_level)
    serve(app, settings)

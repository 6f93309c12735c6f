"""`make run`: the whole system on this machine, on embedded defaults, behind one local URL.

- PostgreSQL: a throwaway server under .dev/pg (or DATABASE_URL, an existing server);
- S3 + SQS: moto's server with the bucket and queues created (or AWS_ENDPOINT_URL and the
  S3_BUCKET / JOBS_QUEUE_URL / EVENTS_QUEUE_URL of existing ones);
- a signing key generated once under .dev/keys; migrations applied;
- every service built so far (and the upload worker, its own process), and a gateway on
  http://localhost:8080 routing like the ingress.
Ctrl-C stops everything; so does killing this process, even with SIGKILL (its children get
SIGTERM from the kernel when it dies: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime
import importlib.util
import json
import os
import signal
import sys
from pathlib import Path

import httpx
import uvicorn

from risingstars.dev import infra, observe
from risingstars.dev.gateway import Gateway

ROOT = Path(__file__).resolve().parents[3]
STATE = Path(os.environ.get("DEV_STATE_DIR", ROOT / ".dev"))
# The gateway listens on BASE_PORT; the rest take the next eight ports (docs/conventions.md).
GATEWAY_PORT = int(os.environ.get("BASE_PORT", "8080"))
PORTS = {
    "auth": GATEWAY_PORT + 1,
    "upload": GATEWAY_PORT + 2,
    "processor": GATEWAY_PORT + 3,
    "upload-worker": GATEWAY_PORT + 6,
    "web": GATEWAY_PORT + 8,
}
MOTO_PORT, PG_PORT = GATEWAY_PORT + 4, GATEWAY_PORT + 5
# OBSERVE=1 (make observe): Prometheus on the chart's rules (risingstars.dev.observe).
PROMETHEUS_PORT = GATEWAY_PORT + 7
SERVICES = ("auth", "upload", "processor", "web")
# Processes run besides each service's own (`python -m risingstars.<service> <command>`).
EXTRA_PROCESSES = {"upload": [("upload-worker", "worker")]}
COLORS = {
    "auth": 36,
    "upload": 35,
    "upload-worker": 95,
    "processor": 33,
    "operator": 34,
    "prometheus": 31,
    "web": 92,
    "run": 32,
}
ROUTES = [
    ("/api/auth", "auth"),
    ("/.well-known", "auth"),
    ("/api/videos", "upload"),
    ("/api/openapi.json", "upload"),
    ("/api/docs", "upload"),
    ("/api/public", "upload"),
    # The web app (services/web): the ingress sends it `/` and `/assets`; here every path the API
    # does not claim, so an unknown one gets the web component's JSON 404.
    ("/", "web"),
]


_PR_SET_PDEATHSIG = 1


def _die_with_runner() -> None:
    # Runs in the child before exec. The kernel signals the child when the thread that started
    # it ends: asyncio starts children from the loop's (main) thread, which lives as long as we do.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def spawn(
    args: list[str], env: dict[str, str], program: str = sys.executable
) -> asyncio.subprocess.Process:
    """`python <args>` (or `program <args>`) as a child that dies with this process, its output
    piped."""
    return await asyncio.create_subprocess_exec(
        program,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=_die_with_runner,
    )


def say(service: str, text: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"\033[{COLORS.get(service, 37)}m{stamp} {service:<9}\033[0m {text}", flush=True)


def pretty(line: str) -> str:
    """One JSON log line as `level message key=value ...`; anything else as it came."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    if not isinstance(entry, dict):
        return line
    level = entry.pop("level", "")
    message = entry.pop("message", "")
    for key in ("time", "service", "logger"):
        entry.pop(key, None)
    extra = " ".join(f"{k}={v}" for k, v in entry.items() if k != "exception")
    text = f"{level:<7} {message} {extra}".rstrip()
    if "exception" in entry:
        text += "\n" + entry["exception"]
    return text


def built(service: str) -> bool:
    return importlib.util.find_spec(f"risingstars.{service}.__main__") is not None


async def pump(service: str, stream: asyncio.StreamReader) -> None:
    async for raw in stream:
        say(service, pretty(raw.decode(errors="replace").rstrip()))


async def run_once(service: str, args: list[str], env: dict[str, str]) -> None:
    proc = await spawn(["-m", f"risingstars.{service}", *args], env)
    await pump(service, proc.stdout)
    if await proc.wait() != 0:
        raise RuntimeError(f"risingstars.{service} {' '.join(args)} failed")


def infrastructure(env: dict[str, str]) -> list[infra.Postgres | infra.Moto]:
    started: list = []
    STATE.mkdir(parents=True, exist_ok=True)
    if "DATABASE_URL" in os.environ:
        env["AUTH_DATABASE_URL"] = env["UPLOAD_DATABASE_URL"] = os.environ["DATABASE_URL"]
        say("run", "PostgreSQL: using DATABASE_URL")
    else:
        STATE.chmod(0o755)
        pg = infra.start_postgres(STATE / "pg", PG_PORT, log_path=STATE / "postgres.log")
        started.append(pg)
        for name in ("auth", "upload"):
            with contextlib.suppress(Exception):  # exists from an earlier run
                infra.create_database(pg, name)
            env[f"{name.upper()}_DATABASE_URL"] = pg.url(name)
        say("run", f"PostgreSQL: {pg.dsn} (data in {STATE / 'pg'})")
    if "AWS_ENDPOINT_URL" in os.environ or "S3_BUCKET" in os.environ:
        for key in ("S3_BUCKET", "JOBS_QUEUE_URL", "EVENTS_QUEUE_URL"):
            if key not in env:
                raise SystemExit(f"{key} is required when AWS_ENDPOINT_URL/S3_BUCKET is set")
        say("run", f"S3 + SQS: {os.environ.get('AWS_ENDPOINT_URL', 'AWS')}")
    else:
        moto = infra.start_moto(MOTO_PORT, log_path=STATE / "moto.log")
        started.append(moto)
        env.update(infra.AWS_DUMMY_ENV)
        env["AWS_ENDPOINT_URL"] = moto.url
        res = infra.create_aws_resources(
            moto.url, "rising-stars", max_receive_count=5, visibility_timeout=120
        )
        env.update(
            S3_BUCKET=res.bucket,
            JOBS_QUEUE_URL=res.jobs_queue_url,
            EVENTS_QUEUE_URL=res.events_queue_url,
            DLQ_URL=res.dlq_url,
        )
        say(
            "run", f"S3 + SQS: moto at {moto.url} (bucket {res.bucket}, queue {res.jobs_queue_url})"
        )
    return started


def service_env(service: str, env: dict[str, str], name: str | None = None) -> dict[str, str]:
    """The environment of `service`'s process `name` (its main one by default)."""
    own = dict(
        env,
        PORT=str(PORTS[name or service]),
        DRAIN_SECONDS="0",
        LOG_LEVEL=env.get("LOG_LEVEL", "info"),
    )
    own["DATABASE_URL"] = env.get(f"{service.upper()}_DATABASE_URL", "")
    if not own["DATABASE_URL"]:
        own.pop("DATABASE_URL")
    return own


async def wait_ready(services: list[str]) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for service in services:
            url = f"http://127.0.0.1:{PORTS[service]}/readyz"
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"{service} did not become ready: {url}")


async def start_prometheus(names: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    """Prometheus scraping `names` every OBSERVE_INTERVAL (5s), the chart's rules rendered with
    the values files in OBSERVE_VALUES (comma-separated; a test's small thresholds)."""
    values = tuple(Path(p) for p in env.get("OBSERVE_VALUES", "").split(",") if p)
    program, *args = observe.prepare(
        STATE / "prometheus",
        PROMETHEUS_PORT,
        {name: PORTS[name] for name in names},
        interval=env.get("OBSERVE_INTERVAL", "5s"),
        values_files=values,
    )
    proc = await spawn(args, env, program=program)
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}"
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/-/ready")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"prometheus did not become ready: {url}")
    say("run", f"prometheus: {url} (the chart's rules; targets: {', '.join(names)})")
    return proc


async def main() -> None:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Every client of make run (a load test too) reaches auth from one address: raise the
    # per-address signup throttle, which would otherwise refuse all but the first few.
    env.setdefault("SIGNUP_MAX_PER_IP", "1000000")
    # Every local client is one user of many uploads (load tests): no daily upload quota here.
    env.setdefault("UPLOAD_DAILY_QUOTA", "1000000")
    services = [s for s in SERVICES if built(s)]
    started = infrastructure(env)
    procs: list[asyncio.subprocess.Process] = []
    pumps: list[asyncio.Task] = []
    try:
        keys = STATE / "keys"
        if "auth" in services:
            env.setdefault("AUTH_SIGNING_KEYS_DIR", str(keys))
            if not any(Path(env["AUTH_SIGNING_KEYS_DIR"]).glob("*.pem")):  # noqa: ASYNC240
                await run_once("auth", ["genkey", env["AUTH_SIGNING_KEYS_DIR"]], env)
        # The media host the web app's pages show videos from (moto's presigned links).
        env.setdefault("WEB_MEDIA_SOURCES", env.get("AWS_ENDPOINT_URL", "https:"))
        env.setdefault("JWKS_URL", f"http://127.0.0.1:{PORTS['auth']}/.well-known/jwks.json")
        for service in ("auth", "upload"):
            if service in services:
                await run_once(service, ["migrate"], service_env(service, env))
        processes = [(s, s, []) for s in services] + [
            (service, name, [command])
            for service in services
            for name, command in EXTRA_PROCESSES.get(service, [])
        ]
        for service, name, args in processes:
            proc = await spawn(
                ["-m", f"risingstars.{service}", *args], service_env(service, env, name)
            )
            procs.append(proc)
            pumps.append(asyncio.create_task(pump(name, proc.stdout)))
        await wait_ready([name for _, name, _ in processes])
        if env.get("OBSERVE") == "1":
            procs.append(await start_prometheus([name for _, name, _ in processes], env))
            pumps.append(asyncio.create_task(pump("prometheus", procs[-1].stdout)))
        routes = [(prefix, f"http://127.0.0.1:{PORTS[s]}") for prefix, s in ROUTES if s in services]
        config = uvicorn.Config(
            Gateway(routes), host="127.0.0.1", port=GATEWAY_PORT, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        say(
            "run",
            f"ready: http://localhost:{GATEWAY_PORT}"
            f"  (services: {', '.join(services)}; Ctrl-C stops)",
        )
        if "processor" in services:
            say(
                "run",
                "operator decision on the live queue: "
                f"AWS_ENDPOINT_URL={env.get('AWS_ENDPOINT_URL', '')} AWS_ACCESS_KEY_ID=testing "
                "AWS_SECRET_ACCESS_KEY=testing .venv/bin/python -m risingstars.operator dry-run "
                f"--queue-url {env['JOBS_QUEUE_URL']}",
            )
        await server.serve()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 25)
        for server in started:
            infra.stop(server.proc)
        say("run", "stopped")


def cli() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


if __name__ == "__main__":
    cli()

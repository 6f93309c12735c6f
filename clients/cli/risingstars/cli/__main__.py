"""`rising-stars COMMAND`: the Rising Stars API from a terminal.

The API's base URL comes from `--base-url` or RISING_STARS_URL (default the `make run` gateway).
`--json` prints the API's answers as JSON for scripts; otherwise they are shown as tables.
Errors print the API's own message (in Spanish) and exit 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from risingstars.cli.api import Api, ApiError
from risingstars.cli.upload import Uploader

DEFAULT_URL = "http://localhost:8080"
FINAL = {"processed", "failed", "rejected"}
WATCH_INTERVAL_SECONDS = 3.0

out = Console()
err = Console(stderr=True)


def _table(rows: list[dict[str, Any]], columns: list[str], title: str | None = None) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    return table


def _show(args: argparse.Namespace, body: Any, columns: list[str] | None = None) -> None:
    if args.json:
        print(json.dumps(body, ensure_ascii=False, indent=2))
    elif isinstance(body, list) and columns:
        out.print(_table(body, columns))
    elif isinstance(body, dict) and "message" in body and len(body) <= 3:
        out.print(body["message"], *(f"{k}={v}" for k, v in body.items() if k != "message"))
    elif isinstance(body, dict):
        out.print(_table([{"campo": k, "valor": v} for k, v in body.items()], ["campo", "valor"]))


def _about(seconds: float) -> str:
    return f"~{int(seconds)} s" if seconds < 120 else f"~{round(seconds / 60)} min"


def _status_line(video: dict[str, Any]) -> str:
    line = f"{video['video_id']}  {video['status']}"
    # While it waits: {"position": n, "eta_seconds": s}, either null while unknown.
    queue = video.get("queue")
    if isinstance(queue, dict) and queue.get("position") is not None:
        line += f"  posición en la cola: {queue['position']}"
        if queue.get("eta_seconds") is not None:
            line += f", listo en {_about(queue['eta_seconds'])}"
    if video.get("failure_reason"):
        line += f"  ({video['failure_reason']})"
    return line


def cmd_signup(api: Api, args: argparse.Namespace) -> None:
    password = _password(args)
    body = {
        "first_name": args.first_name,
        "last_name": args.last_name,
        "email": args.email,
        "password1": password,
        "password2": password,
        "city": args.city,
        "country": args.country,
    }
    _show(args, api.call("POST", "/api/auth/signup", auth=False, json=body))


def cmd_login(api: Api, args: argparse.Namespace) -> None:
    email = args.email or input("Email: ")
    api.login(email, _password(args))
    if args.json:
        _show(args, {"logged_in": True, "email": email})
    else:
        out.print(f"Sesión iniciada como {email}")


def cmd_logout(api: Api, args: argparse.Namespace) -> None:
    api.logout()
    if not args.json:
        out.print("Sesión cerrada")


def cmd_upload(api: Api, args: argparse.Namespace) -> None:
    path = Path(args.file)
    if not path.is_file():
        raise ApiError(400, f"No existe el archivo {path}")
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, disable=args.json or not err.is_terminal) as bar:
        task = bar.add_task("subiendo", total=None)

        def started(total: int, stored: int) -> None:
            bar.update(task, total=total, completed=stored)

        result = Uploader(api).upload(
            path,
            args.title,
            started=started,
            advance=lambda n: bar.advance(task, n),
        )
    _show(args, result)


def cmd_status(api: Api, args: argparse.Namespace) -> None:
    deadline = time.monotonic() + args.timeout
    while True:
        video = api.call("GET", f"/api/videos/{args.video_id}")
        if args.json and not args.watch:
            _show(args, video)
            return
        if args.json:
            print(json.dumps(video, ensure_ascii=False), flush=True)
        else:
            out.print(_status_line(video))
        if not args.watch or video["status"] in FINAL or time.monotonic() > deadline:
            return
        api.sleep(WATCH_INTERVAL_SECONDS)


def cmd_videos(api: Api, args: argparse.Namespace) -> None:
    _show(args, api.call("GET", "/api/videos"), ["video_id", "title", "status", "uploaded_at"])


def cmd_delete(api: Api, args: argparse.Namespace) -> None:
    _show(args, api.call("DELETE", f"/api/videos/{args.video_id}"))


def cmd_public(api: Api, args: argparse.Namespace) -> None:
    params = {k: v for k, v in {"city": args.city, "limit": args.limit}.items() if v is not None}
    rows = api.call("GET", "/api/public/videos", auth=False, params=params)
    _show(args, rows, ["video_id", "title", "username", "city", "votes"])


def cmd_vote(api: Api, args: argparse.Namespace) -> None:
    _show(args, api.call("POST", f"/api/public/videos/{args.video_id}/vote"))


def cmd_rankings(api: Api, args: argparse.Namespace) -> None:
    params = {k: v for k, v in {"city": args.city, "limit": args.limit}.items() if v is not None}
    rows = api.call("GET", "/api/public/rankings", auth=False, params=params)
    _show(args, rows, ["position", "username", "city", "votes"])


def _password(args: argparse.Namespace) -> str:
    # Never a command-line argument (it would show in `ps` and the shell's history).
    return os.environ.get("RISING_STARS_PASSWORD") or getpass.getpass("Contraseña: ")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rising-stars", description=__doc__.splitlines()[0])
    p.add_argument(
        "--base-url",
        default=os.environ.get("RISING_STARS_URL", DEFAULT_URL),
        help="the API's base URL (env RISING_STARS_URL; default %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the API's answers as JSON")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "signup", help="create an account (password from RISING_STARS_PASSWORD or a prompt)"
    )
    for name in ("first_name", "last_name", "email", "city", "country"):
        s.add_argument(f"--{name.replace('_', '-')}", dest=name, required=True)
    s.set_defaults(run=cmd_signup)

    s = sub.add_parser("login", help="log in and keep the tokens (refreshed automatically)")
    s.add_argument("--email")
    s.set_defaults(run=cmd_login)
    sub.add_parser("logout", help="revoke and forget the tokens").set_defaults(run=cmd_logout)

    s = sub.add_parser("upload", help="upload a video; rerun the same command to resume")
    s.add_argument("file")
    s.add_argument("--title", required=True)
    s.set_defaults(run=cmd_upload)

    s = sub.add_parser("status", help="a video's state, queue position and ETA")
    s.add_argument("video_id")
    s.add_argument("--watch", action="store_true", help="poll until processed, failed or rejected")
    s.add_argument("--timeout", type=float, default=3600, help="give up watching after SECONDS")
    s.set_defaults(run=cmd_status)

    sub.add_parser("videos", help="your videos").set_defaults(run=cmd_videos)
    s = sub.add_parser("delete", help="delete one of your videos")
    s.add_argument("video_id")
    s.set_defaults(run=cmd_delete)

    s = sub.add_parser("public", help="processed videos open for voting")
    s.add_argument("--city")
    s.add_argument("--limit", type=int)
    s.set_defaults(run=cmd_public)
    s = sub.add_parser("vote", help="vote for a public video")
    s.add_argument("video_id")
    s.set_defaults(run=cmd_vote)
    s = sub.add_parser("rankings", help="players ranked by votes")
    s.add_argument("--city")
    s.add_argument("--limit", type=int)
    s.set_defaults(run=cmd_rankings)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    api = Api(args.base_url)
    try:
        args.run(api, args)
    except ApiError as exc:
        err.print(f"[red]Error {exc.status}:[/red] {exc.detail}", highlight=False)
        return 1
    except KeyboardInterrupt:
        err.print("Interrumpido. Para reanudar una subida, ejecute el mismo comando otra vez.")
        return 130
    except OSError as exc:
        err.print(f"[red]Error:[/red] {exc}", highlight=False)
        return 1
    finally:
        api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

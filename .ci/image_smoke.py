"""Smoke test run inside the built image by .ci/image-check (standard library only).

As the image's own user, with the image's environment: it answers one question with
``foundation-bot ask --json``, applies the migrations (the image's SQLite database, and
PostgreSQL with ``--postgres URL``), and serves ``/healthz`` and ``/readyz`` from
``foundation-bot run``. Exits non-zero with one line saying what failed.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

QUESTION = "who is on the pytorch foundation board?"
#: Generous: the CI machine may be loaded; a healthy image answers in seconds.
START_SECONDS = 120.0
COMMAND_SECONDS = 180.0


class SmokeFailure(Exception):
    """The image does not do what it must."""


def bot(*args: str, env: dict[str, str] | None = None) -> str:
    """Run ``foundation-bot ARGS`` and return its stdout; fail with its stderr."""
    result = subprocess.run(
        ["foundation-bot", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise SmokeFailure(
            f"foundation-bot {' '.join(args)}: exit {result.returncode}: "
            f"{result.stderr.strip()[-2000:]}"
        )
    return result.stdout


def check_user() -> None:
    uid = os.getuid()
    name = pwd.getpwuid(uid).pw_name
    if uid == 0:
        raise SmokeFailure("the image runs as root")
    print(f"user: {name} (uid {uid})")


def check_answer() -> None:
    [line] = bot("ask", "--json", QUESTION).splitlines()
    answer = json.loads(line)
    if not answer["answered"] or "Nvidia" not in answer["answer"]:
        raise SmokeFailure(f"ask --json did not answer from the FAQ: {line}")
    print(f"ask --json: answered (entry {answer['entry_id']}, score {answer['score']})")


def check_migrations(url: str | None) -> None:
    env = dict(os.environ)
    if url is not None:
        env["FOUNDATION_BOT_DATABASE_URL"] = url
    where = "PostgreSQL" if url is not None else env.get("FOUNDATION_BOT_DATABASE_URL", "default")
    bot("db", "upgrade", env=env)
    current = bot("db", "current", env=env).strip()
    # "database at revision R (head H)": applied means R is H.
    revision, _, head = current.removeprefix("database at revision ").partition(" (head ")
    if revision != head.rstrip(")"):
        raise SmokeFailure(f"migrations not applied on {where}: {current}")
    print(f"migrations on {where}: {current}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (http only)
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def check_web() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bot.toml"
        config.write_text(f'[web]\nhost = "127.0.0.1"\nport = {port}\n', encoding="utf-8")
        # The console adapter keeps `run` going until its stdin closes: a clean stop.
        proc = subprocess.Popen(
            ["foundation-bot", "--config", str(config), "run", "--console"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + START_SECONDS
            while True:
                if proc.poll() is not None:
                    raise SmokeFailure(f"run exited early ({proc.returncode})")
                try:
                    status, body = get(f"http://127.0.0.1:{port}/healthz")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SmokeFailure(
                            f"/healthz not served in {START_SECONDS:.0f} s"
                        ) from None
                    time.sleep(0.2)
            if status != 200 or json.loads(body) != {"status": "ok"}:
                raise SmokeFailure(f"/healthz: {status} {body}")
            print(f"/healthz: {status} {body}")
            status, body = get(f"http://127.0.0.1:{port}/readyz")
            if status != 200:
                raise SmokeFailure(f"/readyz: {status} {body}")
            print(f"/readyz: {status} {body}")
        finally:
            try:  # communicate() closes stdin: end of input, the bot stops
                _, err = proc.communicate(timeout=COMMAND_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise SmokeFailure("run did not stop at the end of its input") from None
        if proc.returncode != 0:
            raise SmokeFailure(f"run stopped with exit {proc.returncode}: {err.strip()[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", metavar="URL", help="also migrate this empty database")
    args = parser.parse_args()
    try:
        check_user()
        check_answer()
        check_migrations(None)
        if args.postgres:
            check_migrations(args.postgres)
        check_web()
    except SmokeFailure as exc:
        print(f"image smoke test failed: {exc}", file=sys.stderr)
        return 1
    print("image smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

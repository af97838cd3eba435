"""The terminal chat in a real terminal (a pseudo-terminal): line editing and history."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

#: Generous: the bot starts (migrations, index) on a loaded CI machine.
PATIENCE = 120.0


class Terminal:
    """A process on a pseudo-terminal, read until expected text shows up."""

    def __init__(self, tmp: Path) -> None:
        self._master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FOUNDATION_BOT")}
        env |= {
            "FOUNDATION_BOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bot.db",
            "XDG_STATE_HOME": str(tmp / "state"),
            "TERM": "xterm",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--console"],
            stdin=slave,
            stdout=slave,
            stderr=subprocess.DEVNULL,
            cwd=tmp,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.seen = ""

    def type(self, keys: str) -> None:
        os.write(self._master, keys.encode())

    def wait_for(self, text: str, count: int = 1) -> None:
        deadline = time.monotonic() + PATIENCE
        while self.seen.count(text) < count:
            assert time.monotonic() < deadline, f"never saw {text!r} x{count}: {self.seen[-500:]!r}"
            ready, _, _ = select.select([self._master], [], [], 1.0)
            if ready:
                try:
                    self.seen += os.read(self._master, 65536).decode(errors="replace")
                except OSError:  # the process closed the terminal
                    break
        assert self.seen.count(text) >= count, self.seen[-500:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=PATIENCE)
        os.close(self._master)


def test_arrow_up_recalls_the_last_question_and_history_survives_a_restart(
    tmp_path: Path,
) -> None:
    term = Terminal(tmp_path)
    try:
        term.wait_for("you> ")
        term.type("who announced the pytorch foundation\r")
        term.wait_for("Zuckerberg")
        term.wait_for("you> ", 2)
        term.type("\x1b[A\r")  # arrow up, Enter: the same question again
        term.wait_for("Zuckerberg", 2)
        term.wait_for("you> ", 3)
        term.type("\x04")  # Ctrl-D ends the chat
        assert term.proc.wait(timeout=PATIENCE) == 0
    finally:
        term.close()
    history = tmp_path / "state" / "foundation-bot" / "history"
    assert "who announced the pytorch foundation" in history.read_text()

    again = Terminal(tmp_path)
    try:
        again.wait_for("you> ")
        again.type("\x1b[A\r")  # the previous run's question
        again.wait_for("Zuckerberg")
    finally:
        again.close()

"""The command line: ask, faq import/export/list/add, logs, db, run --console."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import build_parser, main, parse_since


class CLI:
    """Runs ``foundation-bot`` in-process against one database."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, *args: str, stdin: str = "") -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        old_env = os.environ.get("FOUNDATION_BOT_DATABASE_URL")
        os.environ["FOUNDATION_BOT_DATABASE_URL"] = self.url
        old_err, sys.stderr = sys.stderr, err
        try:
            code = main(list(args), stdin=io.StringIO(stdin), stdout=out)
        finally:
            sys.stderr = old_err
            if old_env is None:
                del os.environ["FOUNDATION_BOT_DATABASE_URL"]
            else:
                os.environ["FOUNDATION_BOT_DATABASE_URL"] = old_env
        return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli(db_url: str) -> CLI:
    return CLI(db_url)


def test_ask_json_answers_and_declines(cli: CLI) -> None:
    code, out, _ = cli("ask", "--json", "who sits on the pytorch foundation board?")
    assert code == 0
    record = json.loads(out)
    # The old keys stay; outcome, reason and suggestions are added.
    assert set(record) == {
        "question",
        "answered",
        "answer",
        "entry_id",
        "score",
        "outcome",
        "reason",
        "suggestions",
    }
    assert record["answered"] is True and "Nvidia" in record["answer"]
    assert record["outcome"] == "answer" and record["suggestions"] == []
    assert isinstance(record["entry_id"], int) and 0 < record["score"] <= 1
    _, out, _ = cli("ask", "--json", "what's the weather like in Berlin?")
    declined = json.loads(out)
    assert declined["answered"] is False and declined["answer"] is None
    assert declined["outcome"] == "decline" and declined["suggestions"] == []


def test_ask_json_lists_suggestions_when_unsure(cli: CLI) -> None:
    """A question the bot is not sure about gets "did you mean" suggestions, each with the
    entry's question and the answer that would be posted."""
    _, out, _ = cli("ask", "--json", "what companies")
    record = json.loads(out)
    assert record["outcome"] == "clarify" and record["answered"] is False
    assert 1 <= len(record["suggestions"]) <= 3
    assert all({"entry_id", "question", "answer"} == set(s) for s in record["suggestions"])
    assert any("Amazon Web Services" in s["answer"] for s in record["suggestions"])


def test_ask_reads_one_question_per_line_and_logs_each(cli: CLI) -> None:
    code, out, _ = cli("ask", "--json", stdin="who announced it?\n\nis it still open source?\n")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["question"] for r in lines] == ["who announced it?", "", "is it still open source?"]
    assert lines[1]["answered"] is False
    code, out, _ = cli("logs", "--platform", "cli", "--kind", "question", "--format", "json")
    assert [json.loads(line)["text"] for line in out.splitlines()] == [
        "who announced it?",
        "",
        "is it still open source?",
    ]


def test_faq_export_import_round_trip_and_list(cli: CLI, tmp_path: Path) -> None:
    for fmt in ("toml", "json"):
        path = tmp_path / f"faq.{fmt}"
        assert cli("faq", "export", "-o", str(path))[0] == 0
        code, out, _ = cli("faq", "import", str(path))
        assert code == 0 and "0 new, 0 updated" in out
        again = tmp_path / f"again.{fmt}"
        cli("faq", "export", "-o", str(again))
        assert again.read_text() == path.read_text()
    code, out, _ = cli("faq", "list")
    assert len(out.splitlines()) >= 25


def test_faq_import_bad_file_reports_every_error_and_changes_nothing(
    cli: CLI, tmp_path: Path
) -> None:
    before = cli("faq", "export", "--format", "json")[1]
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[entry]]\nslug = "new-one"\nquestion = "New?"\nanswer = "Yes."\n\n'
        '[[entry]]\nslug = "governing-board"\nquestion = "Changed?"\nanswer = "changed"\n\n'
        '[[entry]]\nquestion = ""\nanswer = 3\n',
        encoding="utf-8",
    )
    code, _, err = cli("faq", "import", str(bad))
    assert code == 1
    assert "nothing changed" in err
    assert "entry 3: 'question' is empty" in err and "entry 3: 'answer' must be a string" in err
    assert cli("faq", "export", "--format", "json")[1] == before


def test_faq_add_makes_the_bot_answer_it(cli: CLI) -> None:
    code, out, _ = cli(
        "faq",
        "add",
        "--question",
        "Where is the foundation's mascot kept?",
        "--answer",
        "In the torch cabinet.",
        "--phrasing",
        "where does the mascot live",
        "--phrasing",
        "mascot location",
        "--tag",
        "fun",
    )
    assert code == 0, out
    record = json.loads(cli("ask", "--json", "where is the mascot kept?")[1])
    assert record["answered"] and record["answer"].startswith("In the torch cabinet.")
    code, _, err = cli(
        "faq", "add", "--question", "Where is the foundation's mascot kept?", "--answer", "dup"
    )
    assert code == 2 and "exists" in err


def test_logs_filters_and_formats(cli: CLI) -> None:
    cli("ask", "who is on the pytorch foundation board?")
    cli("ask", "--user", "someone", "tell me a joke")
    code, out, _ = cli("logs", "--format", "csv", "--kind", "declined")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 1 and rows[0]["kind"] == "declined"
    code, out, _ = cli("logs", "--user", "someone")
    assert code == 0 and out.splitlines()[0].startswith("ID") and len(out.splitlines()) == 2
    assert cli("logs", "--since", "1h", "--format", "json")[1].count("\n") == 2  # 2 exchanges
    assert cli("logs", "--since", "2999-01-01")[1].count("\n") == 1
    code, _, err = cli("logs", "--since", "last tuesdayish")
    assert code == 2 and "--since" in err


def test_logs_show_each_question_with_its_outcome_on_one_row(cli: CLI) -> None:
    cli("ask", "who is on the pytorch foundation board?")
    cli("ask", "tell me a joke")
    code, out, _ = cli("logs", "--kind", "declined")
    assert code == 0
    _header, row = out.splitlines()
    assert "declined" in row and row.endswith("tell me a joke")
    code, out, _ = cli("logs", "--format", "json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["kind"], r["question"]) for r in rows] == [
        ("answer", "who is on the pytorch foundation board?"),
        ("declined", "tell me a joke"),
    ]
    assert "Nvidia" in rows[0]["text"]  # the reply is still there, in its own field
    code, out, _ = cli("logs", "--format", "csv")
    assert [r["question"] for r in csv.DictReader(io.StringIO(out))] == [
        "who is on the pytorch foundation board?",
        "tell me a joke",
    ]


@pytest.mark.parametrize(
    ("option", "value"), [("--kind", "declind"), ("--platform", "slak"), ("--platform", "X")]
)
def test_logs_refuse_an_unknown_platform_or_kind(cli: CLI, option: str, value: str) -> None:
    with pytest.raises(SystemExit) as exited:
        cli("logs", option, value)
    assert exited.value.code == 2


def test_logs_csv_cells_cannot_run_as_spreadsheet_formulas(cli: CLI) -> None:
    formulas = ['=HYPERLINK("http://evil.example","x")', "@SUM(A1)", "+1", "-1+2", "\uff1d1"]
    cli("ask", stdin="\n".join(formulas))
    code, out, _ = cli("logs", "--format", "csv", "--kind", "question")
    assert code == 0
    assert [row["text"] for row in csv.DictReader(io.StringIO(out))] == ["'" + t for t in formulas]


def _subcommands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from _subcommands(child, (*path, name))


def test_every_command_and_option_has_a_help_line() -> None:
    parser = build_parser()
    commands = dict(_subcommands(parser))
    assert len(commands) == 18
    for path, command in [((), parser), *commands.items()]:
        assert command.description, path
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(c.help for c in action._choices_actions), path
            elif action.dest != "help":
                assert action.help, (path, action.dest)


@pytest.mark.parametrize("path", [("logs",), ("faq", "add"), ("users", "add"), ("run",)])
def test_main_commands_show_an_example(path: tuple[str, ...]) -> None:
    command = dict(_subcommands(build_parser()))[path]
    help_text = command.format_help()
    assert "examples:\n  foundation-bot " + " ".join(path) in help_text


def test_run_help_names_the_web_server_and_its_port() -> None:
    help_text = dict(_subcommands(build_parser()))[("run",)].format_help()
    assert "web server" in help_text and "127.0.0.1:8080" in help_text


def test_parse_since() -> None:
    now = datetime(2026, 1, 10, 12, tzinfo=UTC)
    assert parse_since("2d", now) == datetime(2026, 1, 8, 12, tzinfo=UTC)
    assert parse_since("2026-01-01", now) == datetime(2026, 1, 1, tzinfo=UTC)


def test_unreachable_database_is_one_line_not_a_traceback() -> None:
    cli = CLI("postgresql+asyncpg://nobody:hunter2@127.0.0.1:1/none")
    code, _, err = cli("ask", "who is on the pytorch foundation board?")
    assert code == 1
    assert err.startswith("foundation-bot: cannot reach the database")
    assert "hunter2" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unsupported_database_is_one_line_naming_the_supported_drivers() -> None:
    cli = CLI("mysql+aiomysql://bot:hunter2@127.0.0.1/fb")
    code, _, err = cli("ask", "who is on the pytorch foundation board?")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("foundation-bot: unsupported database URL mysql+aiomysql://bot:***@")
    assert "sqlite+aiosqlite:///PATH" in err and "postgresql+asyncpg://" in err
    assert "hunter2" not in err


def test_malformed_config_is_one_line(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[answering]\nthreshhold = 0.5\n", encoding="utf-8")
    code, _, err = CLI(sqlite_url)("--config", str(config), "ask", "hi")
    assert code == 1 and "unknown key 'answering.threshhold'" in err
    assert len(err.strip().splitlines()) == 1


def test_db_upgrade_reports_revision(cli: CLI) -> None:
    code, out, _ = cli("db", "upgrade")
    assert code == 0 and "database at revision" in out
    code, out, _ = cli("db", "downgrade", "base")
    assert "base (empty)" in out


def _installed_script() -> str:
    script = shutil.which("foundation-bot")
    if script is None:
        pytest.fail("the foundation-bot script is not installed: pip install -e '.[dev]'")
    return script


def test_smoke_installed_ask_json_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "FOUNDATION_BOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/s.db"}
    result = subprocess.run(
        [_installed_script(), "ask", "--json"],
        input="who is on the pytorch foundation board?\ntell me a joke\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answered, declined = (json.loads(line) for line in result.stdout.splitlines())
    assert answered["answered"] and not declined["answered"]


def test_run_console_chat_in_a_subprocess(tmp_path: Path) -> None:
    """A newcomer's first run: SQLite in the working directory, no config, no account."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOUNDATION_BOT")}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--console"],
        input=(
            "who is on the pytorch foundation board?\n/help\n/announce list\nwhat is the weather?\n"
        ),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Nvidia" in result.stdout
    assert "/help" in result.stdout
    assert "won't guess" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert (tmp_path / "foundation-bot.db").exists()


def test_a_taken_port_stops_a_slack_http_bot_with_one_line(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack's HTTP mode receives its events on the web server: without it the bot would
    run deaf, so the start fails instead, saying what to change."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "test-signing-secret")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "bot.toml"
        config.write_text(
            f'[web]\nport = {port}\n[slack]\nenabled = true\nmode = "http"\n', encoding="utf-8"
        )
        code, _, err = CLI(sqlite_url)("--config", str(config), "run")
    assert code == 1
    assert err.splitlines()[-1].startswith(
        f"foundation-bot: cannot listen on 127.0.0.1:{port} (Address already in use): "
        "the web server carries Slack's HTTP mode"
    )
    assert "Traceback" not in err and "web server not started" not in err


def test_sigterm_stops_the_bot_gracefully(tmp_path: Path) -> None:
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("FOUNDATION_BOT")}
    config = tmp_path / "bot.toml"
    config.write_text("[web]\nenabled = false\n", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "run", "--console"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("who is on the pytorch foundation board?\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    seen = ""
    while "Nvidia" not in seen and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:  # the bot exited: stop waiting
            break
        seen += line
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert "Nvidia" in seen
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_a_secret_that_reaches_a_log_line_is_blanked_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Even a library's debug dump or an exception message cannot print a configured token."""
    import logging

    from pydantic import SecretStr

    from bot.cli import _configure_logging
    from bot.config import Config, Settings

    token = "xoxb-1111-2222-secret-value"
    config = Config(Settings(), {("slack", "bot_token"): SecretStr(token)}, "test")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    webhook_level = logging.getLogger("slack_sdk.webhook").level
    try:
        _configure_logging(config, quiet=False, verbose=True)
        logging.getLogger("slack_bolt.App").debug("headers: Authorization=Bearer %s", token)
        try:
            raise RuntimeError(f"bad url https://slack.com/api?token={token}")
        except RuntimeError:
            logging.getLogger("bot").exception("request failed")
        # slack_sdk's webhook client logs the response_url at DEBUG: not even --verbose shows it.
        assert logging.getLogger("slack_sdk.webhook.async_client").getEffectiveLevel() >= 20
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("slack_sdk.webhook").setLevel(webhook_level)
    err = capsys.readouterr().err
    assert "Authorization=Bearer [redacted]" in err
    assert "token=[redacted]" in err and "Traceback" in err
    assert token not in err


def test_a_run_without_postgresql_says_once_at_the_end_why_tests_skipped(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("FOUNDATION_BOT_TEST_POSTGRES_URL", "CI")
    }
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_dashboard.py::test_login_limiter_forgets_failures_after_the_window",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    said = [i for i, line in enumerate(lines) if "skipped: they run against PostgreSQL" in line]
    assert len(said) == 1
    assert lines[said[0]].startswith("1 test was skipped: they run against PostgreSQL")
    assert "FOUNDATION_BOT_TEST_POSTGRES_URL=postgresql+asyncpg://" in "\n".join(lines[said[0] :])

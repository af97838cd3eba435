"""The ``foundation-bot`` command line.

Handlers are configured here, once; library modules only create loggers. Every expected failure
(bad config, unreachable database, invalid FAQ file) prints one line and exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import io
import json
import logging
import re
import sys
import textwrap
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from adapters import registry
from adapters.base import Adapter
from announcements.news import AnnouncementNews
from announcements.store import AnnouncementStore
from bot import __version__
from bot.answering import Knowledge, moderators_note
from bot.config import Config, load_config
from bot.dispatch import record_exchange
from bot.errors import FaqImportError, FoundationBotError
from bot.events import Author, Conversation, IncomingMessage
from bot.faqfile import FaqRecord, Format, dump, guess_format, read_file, slugify, validate_records
from bot.platforms import LOGGED_PLATFORMS
from bot.privacy import pseudonymizer_for
from bot.runtime import Runtime, prepare_database
from bot.spreadsheet import write_csv
from bot.store.db import Database
from bot.store.engagement import (
    EVENT_KINDS,
    EXCHANGE_COLUMNS,
    OUTCOME_KINDS,
    EngagementLog,
    LogFilter,
    exchange_records,
)
from bot.store.faq import FaqStore, to_record
from bot.store.users import MIN_PASSWORD_CHARS, ROLES

log = logging.getLogger("bot.cli")

EXIT_ERROR = 1
EXIT_USAGE = 2


class UsageError(FoundationBotError):
    """A command-line argument is invalid."""


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``24h``, ``7d``, ``30m``, ``2w``, an ISO date or an ISO date-time (UTC if no zone)."""
    now = now or datetime.now(UTC)
    relative = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", value)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        minutes = {"m": 1, "h": 60, "d": 1440, "w": 10080}[unit] * amount
        return now - timedelta(minutes=minutes)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(
            f"--since: cannot read {value!r}; use e.g. 24h, 7d, 2026-01-31 or 2026-01-31T09:00"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class RedactingFormatter(logging.Formatter):
    """The log line format, with every configured secret blanked out of the finished line.

    Defence in depth: secrets are never logged on purpose, but a library's debug output or an
    exception message could carry one (a token in a URL, a header dump).
    """

    #: Shorter values could be common words; no real token or key is this short.
    MIN_SECRET_CHARS = 8

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._secrets = sorted(
            {s for s in secrets if len(s) >= self.MIN_SECRET_CHARS}, key=len, reverse=True
        )

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        for secret in self._secrets:
            line = line.replace(secret, "[redacted]")
        return line


def _configure_logging(config: Config | None, quiet: bool, verbose: bool) -> None:
    level = config.settings.bot.log_level if config else "INFO"
    if quiet:
        level = "WARNING"
    if verbose:
        level = "DEBUG"
    logging.basicConfig(level=level, stream=sys.stderr, force=True)
    formatter = RedactingFormatter(config.secret_values() if config else ())
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
    # SQLAlchemy's echo and aiohttp's access log are noisy at INFO; keep ours readable.
    logging.getLogger("apscheduler").setLevel(max(logging.getLevelName(level), logging.WARNING))
    # Some SDKs log credentials or posting capabilities at DEBUG (the registry lists them):
    # never let them through, even with --verbose.
    for name in registry.SECRET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.getLevelName(level), logging.INFO))


def _database(config: Config) -> Database:
    return Database(config.settings.database.url, echo=config.settings.database.echo)


async def _with_db(
    config: Config, work: Callable[[Database], Awaitable[int]], *, prepare: bool = True
) -> int:
    db = _database(config)
    try:
        if prepare:
            await prepare_database(db, config.settings)
        return await work(db)
    finally:
        await db.close()


# --- run -------------------------------------------------------------------------------------


async def _run(config: Config, args: argparse.Namespace) -> int:
    adapters: list[Adapter] = []
    settings = config.settings
    terminal = None
    if args.console:
        terminal = registry.terminal_adapter(
            config,
            banner=(
                f"{settings.bot.name} {__version__} — ask a question about the PyTorch "
                "Foundation, or type /help. Ctrl-D quits."
            ),
        )
        adapters.append(terminal)
    platforms = _platform_adapters(config)
    adapters += platforms
    if not adapters:
        raise UsageError(
            "no adapter enabled: use --console, or enable one of "
            f"{', '.join(registry.platform_names())} in the config"
        )
    # A terminal chat on its own (a first try) runs on if its port is taken; a deployment
    # with platforms does not start without its web server.
    runtime = Runtime(config, adapters, require_web=bool(platforms))
    if terminal is not None:
        terminal._on_close = runtime.request_stop
    await runtime.run()
    return 0


def _platform_adapters(config: Config) -> list[Adapter]:
    """Adapters for the platforms enabled in the config (the adapter registry builds them)."""
    return registry.build_adapters(config)


# --- sync-commands ---------------------------------------------------------------------------


async def _sync_commands(
    config: Config, platform: str, args: argparse.Namespace, stdout: TextIO
) -> int:
    scopes = [args.guild] if args.guild else registry.command_scopes(config.settings, platform)
    for line in await registry.command_sync(config, platform).sync_commands(scopes):
        stdout.write(line + "\n")
    if not scopes:
        stdout.write("global commands can take up to an hour to appear everywhere\n")
    return 0


# --- ask -------------------------------------------------------------------------------------


async def _ask(config: Config, args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    async def work(db: Database) -> int:
        settings = config.settings
        knowledge = Knowledge(
            FaqStore(db),
            threshold=settings.answering.threshold,
            more_info_url=settings.answering.more_info_url,
            max_question_chars=settings.answering.max_question_chars,
            semantic=settings.answering.semantic,
            news=AnnouncementNews(db, AnnouncementStore(db)),
        )
        await knowledge.reload()
        await knowledge.wait_semantic()  # one-off questions: worth the wait when it is on
        engagement = EngagementLog(db, pseudonymizer_for(config))
        questions: Any = (
            [" ".join(args.question)] if args.question else (line.rstrip("\r\n") for line in stdin)
        )
        where = Conversation("cli", "cli", is_direct=True)
        author = Author(id=args.user)
        for number, question in enumerate(questions, start=1):
            answer = await knowledge.respond(question)
            message = IncomingMessage(where, author, question, message_id=str(number))
            await record_exchange(
                engagement, message, answer, uuid.uuid4().hex, None, answer.announcement_id
            )
            if args.json:
                record = {
                    "question": question,
                    "answered": answer.answered,
                    "answer": answer.text if answer.answered else None,
                    "entry_id": answer.entry_id if answer.answered else None,
                    "score": round(answer.score, 4),
                    "outcome": answer.outcome.value,
                    "reason": answer.reason,
                    "suggestions": [
                        {"entry_id": s.entry_id, "question": s.question, "answer": s.answer}
                        for s in answer.suggestions
                    ],
                }
                stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                text = answer.text
                if answer.needs_review:
                    first, _, rest = text.partition("\n")
                    text = "\n".join(p for p in (first, moderators_note(True), rest) if p)
                stdout.write(text + "\n")
                for position, suggestion in enumerate(answer.suggestions, start=1):
                    stdout.write(f"  {position}. {suggestion.question}\n")
                if not args.question:
                    stdout.write("\n")
            stdout.flush()
        return 0

    return await _with_db(config, work)


# --- db --------------------------------------------------------------------------------------


async def _db(config: Config, args: argparse.Namespace, stdout: TextIO) -> int:
    async def work(db: Database) -> int:
        await db.check()
        if args.action == "upgrade":
            await db.upgrade(args.revision)
        elif args.action == "downgrade":
            await db.downgrade(args.revision)
        current = await db.current_revision()
        stdout.write(
            f"database at revision {current or 'base (empty)'} (head {Database.head_revision()})\n"
        )
        return 0

    return await _with_db(config, work, prepare=False)


# --- faq -------------------------------------------------------------------------------------


async def _faq(config: Config, args: argparse.Namespace, stdout: TextIO) -> int:
    async def work(db: Database) -> int:
        store = FaqStore(db)
        if args.action == "import":
            path = Path(args.file)
            records = read_file(path, args.format)
            created, updated, deleted = await store.upsert(records, replace=args.replace)
            stdout.write(
                f"imported {len(records)} entries from {path}: {created} new, {updated} updated"
                + (f", {deleted} deleted" if args.replace else "")
                + "\n"
            )
        elif args.action == "export":
            records = [to_record(e) for e in await store.all()]
            fmt: Format = args.format or (
                guess_format(Path(args.output)) if args.output else "toml"
            )
            text = dump(records, fmt)
            if args.output:
                await asyncio.to_thread(Path(args.output).write_text, text, encoding="utf-8")
                stdout.write(f"exported {len(records)} entries to {args.output}\n")
            else:
                stdout.write(text)
        elif args.action == "list":
            for entry in await store.all():
                stdout.write(f"{entry.id:>4}  {entry.slug:<40}  {entry.question}\n")
        else:
            raw: dict[str, Any] = {
                "slug": args.slug or slugify(args.question),
                "question": args.question,
                "answer": args.answer,
                "phrasings": args.phrasing,
                "tags": args.tag,
            }
            if args.source_url:
                raw["source_url"] = args.source_url
            if args.as_of:
                raw["as_of"] = args.as_of
            record: FaqRecord = validate_records([raw])[0]
            if any(e.slug == record.slug for e in await store.all()):
                raise UsageError(f"an entry with slug '{record.slug}' exists; pass another --slug")
            await store.upsert([record])
            stdout.write(f"added entry '{record.slug}'\n")
        return 0

    return await _with_db(config, work)


# --- logs ------------------------------------------------------------------------------------


def _table(rows: Sequence[dict[str, Any]], out: TextIO) -> None:
    columns = ("id", "created_at", "platform", "channel", "user", "kind", "text")
    widths = {"id": 6, "created_at": 25, "platform": 8, "channel": 12, "user": 14, "kind": 10}
    out.write("  ".join(c.upper().ljust(widths.get(c, 0)) for c in columns).rstrip() + "\n")
    for row in rows:
        cells = []
        for c in columns:
            # An answer or decline is shown by the question it replied to (its kind says how).
            shown = row["question"] if c == "text" and row.get("question") else row[c]
            value = "" if shown is None else str(shown)
            value = " ".join(value.split())  # one line per event, whatever the text held
            width = widths.get(c)
            cells.append(value[:width].ljust(width) if width else value[:100])
        out.write("  ".join(cells).rstrip() + "\n")


async def _logs(config: Config, args: argparse.Namespace, stdout: TextIO) -> int:
    flt = LogFilter(
        since=parse_since(args.since) if args.since else None,
        platform=args.platform,
        kind=args.kind,
        user=args.user,
        limit=args.limit,
    )

    async def work(db: Database) -> int:
        engagement = EngagementLog(db, pseudonymizer_for(config))
        events = await engagement.list(flt)
        questions = await engagement.questions_for(
            e.ref for e in events if e.kind in OUTCOME_KINDS and e.ref
        )
        rows = exchange_records(events, questions, registry.message_link)
        if args.format == "json":
            for row in rows:
                stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif args.format == "csv":
            buffer = io.StringIO()
            write_csv(
                buffer,
                EXCHANGE_COLUMNS,
                ([row[c] for c in EXCHANGE_COLUMNS] for row in rows),
                lineterminator="\n",
            )
            stdout.write(buffer.getvalue())
        else:
            _table(rows, stdout)
        return 0

    return await _with_db(config, work)


# --- users -----------------------------------------------------------------------------------


def _read_password(args: argparse.Namespace, stdin: TextIO) -> str:
    """From --password-file, else a prompt on a terminal, else the first line of stdin."""
    if args.password_file:
        try:
            text = Path(args.password_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {args.password_file}: {exc.strerror}") from None
        return text.splitlines()[0] if text.strip() else ""
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            raise UsageError("the passwords differ; nothing changed")
        return first
    return stdin.readline().rstrip("\r\n")


async def _users(config: Config, args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    from bot.store.users import UserError, UserStore, check_name, check_password, check_role

    if args.action == "add":
        try:
            check_name(args.name)
            check_role(args.role)
            password = check_password(_read_password(args, stdin))
        except UserError as exc:
            raise UsageError(f"{exc}; nothing changed") from None

    async def work(db: Database) -> int:
        store = UserStore(db)
        if args.action == "add":
            try:
                user = await store.add(args.name, args.role, password)
            except UserError as exc:
                raise UsageError(f"{exc}; nothing changed") from None
            stdout.write(f"added user '{user.name}' ({user.role})\n")
        elif args.action == "remove":
            if not await store.remove(args.name):
                raise UsageError(f"no user named {args.name!r}")
            stdout.write(f"removed user '{args.name.strip().lower()}' and ended their sessions\n")
        else:
            for user in await store.all():
                last = (
                    user.last_login_at.isoformat(timespec="seconds")
                    if user.last_login_at
                    else "never"
                )
                stdout.write(f"{user.name:<30}  {user.role:<10}  last login {last}\n")
        return 0

    return await _with_db(config, work)


# --- parser ----------------------------------------------------------------------------------


def _command(
    sub: Any, name: str, summary: str, details: str = "", examples: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` says what it does and shows how it is used."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=textwrap.fill(
            f"{summary[0].upper()}{summary[1:]}." + (f" {details}" if details else ""), 88
        ),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the CLI in the README)."""
    parser = argparse.ArgumentParser(
        prog="foundation-bot",
        description="Announce a foundation's news and answer the community's questions.",
        epilog="examples:\n"
        "  foundation-bot run --console\n"
        '  foundation-bot ask "who is on the pytorch foundation board?"\n'
        "  foundation-bot --config bot.toml logs --since 24h --kind declined\n"
        "COMMAND --help shows each command's options and examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config", metavar="PATH", help="TOML config file (default: $FOUNDATION_BOT_CONFIG)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _command(
        sub,
        "run",
        "run the bot: the platforms enabled in the config, plus the terminal chat with --console",
        "Also starts the web server (web.host:web.port, 127.0.0.1:8080 by default) with the "
        "dashboard at /dashboard/, /healthz, /readyz, /metrics and Slack's HTTP mode; with a "
        "platform enabled the start fails if that port is taken. SIGTERM or Ctrl-C stops it "
        "gracefully.",
        [
            "foundation-bot run --console             # chat in this terminal, no account needed",
            "foundation-bot --config bot.toml run     # Slack, Discord and X as configured",
        ],
    )
    run.add_argument("--console", action="store_true", help="chat with the bot in this terminal")

    ask = _command(
        sub,
        "ask",
        "answer questions from the FAQ (stdin: one per line)",
        "Each question and answer is logged like a chat message.",
        [
            'foundation-bot ask "who is on the pytorch foundation board?"',
            "foundation-bot ask --json < questions.txt",
        ],
    )
    ask.add_argument("question", nargs="*", help="the question; omit to read stdin")
    ask.add_argument("--json", action="store_true", help="one JSON object per question")
    ask.add_argument("--user", default="cli", help="user id to log the questions under")

    db = _command(sub, "db", "database migrations (also applied at start)")
    db_sub = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = _command(
        db_sub,
        "upgrade",
        "apply migrations (default: to the newest)",
        examples=["foundation-bot db upgrade"],
    )
    up.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    down = _command(
        db_sub,
        "downgrade",
        "revert migrations",
        examples=["foundation-bot db downgrade -1", "foundation-bot db downgrade base"],
    )
    down.add_argument("revision", help="target revision: -1, base or a revision id")
    _command(db_sub, "current", "show the applied revision")

    faq = _command(sub, "faq", "the knowledge store: import, export, list and add FAQ entries")
    faq_sub = faq.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = _command(
        faq_sub,
        "import",
        "create/update entries from a TOML or JSON file",
        "Every problem is reported with its entry number; a bad file changes nothing.",
        ["foundation-bot faq import faq.toml", "foundation-bot faq import faq.json --replace"],
    )
    imp.add_argument("file", help="the TOML or JSON file")
    imp.add_argument("--format", choices=("toml", "json"), help="default: from the extension")
    imp.add_argument("--replace", action="store_true", help="also delete entries not in the file")
    exp = _command(
        faq_sub,
        "export",
        "write every entry as TOML or JSON",
        "Export then import gives back the same FAQ.",
        ["foundation-bot faq export -o faq.toml"],
    )
    exp.add_argument("--format", choices=("toml", "json"), help="default: from -o's extension")
    exp.add_argument("-o", "--output", metavar="FILE", help="file to write (default: stdout)")
    _command(faq_sub, "list", "one line per entry: id, slug, question")
    add = _command(
        faq_sub,
        "add",
        "add one entry",
        "Validated like faq import; the slug must be new.",
        [
            'foundation-bot faq add --question "Where is the mascot kept?" '
            '--answer "In the torch cabinet." --phrasing "where does the mascot live" '
            "--source-url https://example.org/mascot --as-of 2026-11-01",
        ],
    )
    add.add_argument("--question", required=True, help="the question as people ask it")
    add.add_argument("--answer", required=True, help="the answer the bot gives")
    add.add_argument(
        "--phrasing", action="append", default=[], help="another way to ask it (repeatable)"
    )
    add.add_argument("--tag", action="append", default=[], help="a topic tag (repeatable)")
    add.add_argument("--source-url", help="where the answer comes from (shown with it)")
    add.add_argument("--as-of", help="the date the answer was true, YYYY-MM-DD")
    add.add_argument("--slug", help="the entry's id in files (default: from the question)")

    for platform in registry.command_platforms():
        setup = _command(sub, platform, f"{platform} application setup")
        setup_sub = setup.add_subparsers(dest="action", required=True, metavar="ACTION")
        sync = _command(
            setup_sub,
            "sync-commands",
            f"register /announce (default: {platform}.command_guilds, else global)",
            "Global commands can take up to an hour to appear everywhere.",
            [f"foundation-bot {platform} sync-commands --guild 123456789012345678"],
        )
        sync.add_argument("--guild", type=int, help="register in this server only (instant)")

    logs = _command(
        sub,
        "logs",
        "engagement log for moderators",
        "Each question is one row with its outcome (answer or declined); JSON and CSV add the "
        "question to the bot's reply. CSV cells never run as spreadsheet formulas.",
        [
            "foundation-bot logs --since 24h --kind declined",
            "foundation-bot logs --platform slack --format csv > slack.csv",
            "foundation-bot logs --user U024BE7LH --since 2026-11-01 --format json",
        ],
    )
    logs.add_argument("--since", help="24h, 7d, 30m, 2w, 2026-01-31 or 2026-01-31T09:00 (UTC)")
    logs.add_argument("--platform", choices=LOGGED_PLATFORMS, help="only this platform's events")
    logs.add_argument("--kind", choices=EVENT_KINDS, help="only events of this kind")
    logs.add_argument("--user", help="only this user's events (a platform id or a pseudonym)")
    logs.add_argument("--limit", type=int, help="at most this many events (oldest first)")
    logs.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="default: table"
    )

    users = _command(sub, "users", "dashboard accounts")
    users_sub = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    user_add = _command(
        users_sub,
        "add",
        "create an account (password from a prompt, --password-file or stdin)",
        f"Passwords have at least {MIN_PASSWORD_CHARS} characters. Moderators review questions "
        "and edit the FAQ, comms retry and mark deliveries, admins do both and read the audit "
        "log.",
        [
            "foundation-bot users add mia --role moderator",
            "foundation-bot users add ada --role admin --password-file /run/secrets/ada",
            "printf '%s\\n' \"$PASSWORD\" | foundation-bot users add cody --role comms",
        ],
    )
    user_add.add_argument("name", help="the login name (letters, digits, . _ - @)")
    user_add.add_argument("--role", choices=ROLES, required=True, help="what the account may do")
    user_add.add_argument(
        "--password-file", metavar="FILE", help="read the password from this file"
    )
    _command(users_sub, "list", "one line per account: name, role, last login")
    user_remove = _command(
        users_sub,
        "remove",
        "delete an account and end its sessions",
        examples=["foundation-bot users remove mia"],
    )
    user_remove.add_argument("name", help="the account's login name")
    return parser


def main(
    argv: Sequence[str] | None = None, *, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> int:
    """Entry point of ``foundation-bot`` and ``python -m bot``; returns the exit code."""
    args = build_parser().parse_args(argv)
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    config: Config | None = None
    try:
        config = load_config(args.config)
        setup = registry.command_platforms()
        quiet = args.command in ("ask", "logs", "faq", "db", "users", *setup) or (
            args.command == "run" and args.console
        )
        _configure_logging(config, quiet and not args.verbose, args.verbose)
        coro: Coroutine[Any, Any, int]
        if args.command == "run":
            coro = _run(config, args)
        elif args.command == "ask":
            coro = _ask(config, args, stdin, stdout)
        elif args.command == "db":
            coro = _db(config, args, stdout)
        elif args.command == "faq":
            coro = _faq(config, args, stdout)
        elif args.command in setup:
            coro = _sync_commands(config, args.command, args, stdout)
        elif args.command == "users":
            coro = _users(config, args, stdin, stdout)
        else:
            coro = _logs(config, args, stdout)
        return asyncio.run(coro)
    except FaqImportError as exc:
        sys.stderr.write(f"foundation-bot: {len(exc.problems)} problem(s), nothing changed:\n")
        for problem in exc.problems:
            sys.stderr.write(f"  {problem}\n")
        return EXIT_ERROR
    except UsageError as exc:
        sys.stderr.write(f"foundation-bot: {exc}\n")
        return EXIT_USAGE
    except FoundationBotError as exc:
        sys.stderr.write(f"foundation-bot: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0

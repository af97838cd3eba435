"""Configuration: defaults, validation messages, secrets."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from bot.config import DEFAULT_DATABASE_URL, Settings, load_config
from bot.deciding import bundled_model
from bot.errors import ConfigError
from bot.platforms import ANNOUNCE_TARGETS


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_no_config_runs_on_sqlite_in_working_directory() -> None:
    config = load_config(environ={})
    assert config.settings.database.url == DEFAULT_DATABASE_URL
    assert config.source == "defaults"


def test_database_url_from_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "sqlite+aiosqlite:///file.db"\n')
    env = {"FOUNDATION_BOT_DATABASE_URL": "postgresql+asyncpg://u@h/db"}
    assert load_config(path, environ=env).settings.database.url == "postgresql+asyncpg://u@h/db"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[bot]\nname = "pt-bot"\n')
    config = load_config(environ={"FOUNDATION_BOT_CONFIG": str(path)})
    assert config.settings.bot.name == "pt-bot"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[slack]\ntokn = 1\n", "unknown key 'slack.tokn'"),
        ("[nonsense]\na = 1\n", "unknown key 'nonsense'"),
        ('[web]\nport = "eighty"\n', "'web.port'"),
        ("[web]\nport = 70000\n", "'web.port'"),
        ('[web]\ntrusted_proxies = ["10.0.0.300"]\n', "'10.0.0.300' is not an IP address"),
        ('[bot]\ntimezone = "Mars/Olympus"\n', "unknown time zone 'Mars/Olympus'"),
        ("[answering]\nthreshold = 2.0\n", "'answering.threshold'"),
        ("[bot\nname=1", "not valid TOML"),
    ],
)
def test_bad_config_fails_with_one_line_naming_the_key(
    tmp_path: Path, body: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, body), environ={})
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_every_problem_of_the_file_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    body = (
        '[web]\nport = "eighty"\n'
        "[answering]\nthreshhold = 0.5\n"
        '[bot]\ntimezone = "Mars/Olympus"\n'
        "[announcements]\nmax_attempts = 0\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, body), environ={})
    lines = str(info.value).splitlines()
    assert lines[0].endswith("config.toml: 4 problems")
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "'web.port'",
        "unknown key 'answering.threshhold'",
        "'bot.timezone'",
        "'announcements.max_attempts'",
    ]
    assert info.value.problems == [line.strip() for line in lines[1:]]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[announcements]\ndaily_quota = { myspace = 3 }\n", "unknown platform 'myspace'"),
        ('[announcements]\ndefault_targets = ["slack", "bsky"]\n', "unknown platform 'bsky'"),
        ('[announcements]\ndiscussion = ["irc"]\n', "unknown platform 'irc'"),
        ('[announcements]\ncomms_channel = "teams:C1"\n', "unknown platform 'teams'"),
        ('[announcements]\ncomms_channel = "C0123"\n', "use platform:channel"),
    ],
)
def test_unknown_platforms_in_platform_tables_are_refused(
    tmp_path: Path, body: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, body), environ={})
    assert expected in str(info.value)
    assert ", ".join(ANNOUNCE_TARGETS) in str(info.value) or "platform:channel" in expected


def test_a_relative_sqlite_path_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "bot.toml"
    path.write_text('[database]\nurl = "sqlite+aiosqlite:///data/bot.db"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    url = load_config(path, environ={}).settings.database.url
    assert url == f"sqlite+aiosqlite:///{folder / 'data' / 'bot.db'}"
    # Absolute paths, the default and the environment's URL are left as they are.
    path.write_text('[database]\nurl = "sqlite+aiosqlite:////srv/bot.db"\n', encoding="utf-8")
    assert load_config(path, environ={}).settings.database.url == "sqlite+aiosqlite:////srv/bot.db"
    path.write_text("[bot]\n", encoding="utf-8")
    assert load_config(path, environ={}).settings.database.url == DEFAULT_DATABASE_URL
    env = {"FOUNDATION_BOT_DATABASE_URL": "sqlite+aiosqlite:///here.db"}
    assert load_config(path, environ=env).settings.database.url == "sqlite+aiosqlite:///here.db"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_enabled_adapter_without_secret_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[discord]\nenabled = true\n")
    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN"):
        load_config(path, environ={})


def test_secret_from_environment_or_file_is_never_in_repr(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-from-file\n", encoding="utf-8")
    path = write(tmp_path, '[discord]\nenabled = true\ntoken_file = "token"\n')
    config = load_config(path, environ={})
    assert config.secret("discord", "token") == "s3cr3t-from-file"
    assert "s3cr3t" not in repr(config)
    env_config = load_config(path, environ={"DISCORD_BOT_TOKEN": "from-env"})
    assert env_config.secret("discord", "token") == "from-env"


def test_example_config_is_valid_and_documents_every_key() -> None:
    example = Path(__file__).parent.parent / "config.example.toml"
    config = load_config(example, environ={})
    text = example.read_text(encoding="utf-8")
    for section_name, section in config.settings:
        for key in type(section).model_fields:
            assert f"{key} =" in text or f"# {key} =" in text, f"{section_name}.{key} undocumented"


def test_example_config_shows_the_real_defaults() -> None:
    """Every key's first line in config.example.toml, set or commented out, shows the value
    the bot uses when the key is unset (keys without a default show an example instead)."""
    example = Path(__file__).parent.parent / "config.example.toml"
    assert load_config(example, environ={}).settings == Settings()
    defaults = Settings()
    section = ""
    shown: dict[tuple[str, str], object] = {}
    for line in example.read_text(encoding="utf-8").splitlines():
        if header := re.fullmatch(r"\[(\w+)\]", line):
            section = header.group(1)
        elif (found := re.fullmatch(r"#? ?(\w+) = (.+)", line)) and found.group(1) in type(
            getattr(defaults, section)
        ).model_fields:
            value = tomllib.loads(f"v = {found.group(2)}")["v"]
            shown.setdefault((section, found.group(1)), value)
    effective = {("answering", "threshold"): bundled_model().answer_cut}
    for (name, key), value in shown.items():
        default = effective.get((name, key), getattr(getattr(defaults, name), key))
        if default is None:
            continue
        expected = list(default) if isinstance(default, tuple) else default
        assert value == expected, f"{name}.{key}: example {value!r}, default {default!r}"


def test_compose_config_is_valid_and_keeps_secrets_in_files() -> None:
    path = Path(__file__).parent.parent / "deploy" / "compose.toml"
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    settings = Settings.model_validate(raw)
    assert settings.slack.enabled and settings.slack.mode == "http"
    assert settings.slack.bot_token_file == "/run/secrets/slack_bot_token"
    assert settings.web.host == "0.0.0.0"  # noqa: S104 - inside the container


def test_compose_instances_split_the_discord_shards_through_the_environment() -> None:
    root = Path(__file__).parent.parent
    compose = (root / "docker-compose.yml").read_text(encoding="utf-8")
    shards = sorted(re.findall(r'FOUNDATION_BOT_DISCORD_SHARD_IDS: "(\d+)"', compose))
    env = {
        "FOUNDATION_BOT_CONFIG": str(root / "deploy" / "compose.toml"),
        # In the containers these are files under /run/secrets.
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "test-signing-secret",
    }
    count = load_config(environ=env).settings.discord.shard_count
    assert count is not None and shards == [str(i) for i in range(count)]  # each shard once
    for shard in shards:
        one = load_config(environ={**env, "FOUNDATION_BOT_DISCORD_SHARD_IDS": shard})
        assert one.settings.discord.shard_ids == (int(shard),)
    both = load_config(environ={**env, "FOUNDATION_BOT_DISCORD_SHARD_IDS": "0, 2"})
    assert both.settings.discord.shard_ids == (0, 2)
    with pytest.raises(ConfigError) as caught:
        load_config(environ={**env, "FOUNDATION_BOT_DISCORD_SHARD_IDS": "first"})
    assert str(caught.value) == (
        "config error: FOUNDATION_BOT_DISCORD_SHARD_IDS must be shard numbers like 0 or 0,1;"
        " got 'first'"
    )
    with pytest.raises(ConfigError, match="shard_ids must be distinct numbers from 0 to 2"):
        load_config(environ={**env, "FOUNDATION_BOT_DISCORD_SHARD_IDS": "3"})


def test_the_database_password_counts_as_a_secret_for_the_logs() -> None:
    config = load_config(
        environ={"FOUNDATION_BOT_DATABASE_URL": "postgresql+asyncpg://bot:s3cr%40t-pw@db/fb"}
    )
    assert {"s3cr@t-pw", "s3cr%40t-pw"} <= set(config.secret_values())


def test_the_compose_balancer_forwards_only_slack_and_the_dashboard() -> None:
    """/metrics and /readyz (whose reasons name the database) stay off the published port:
    the balancer is the only service with one, and its Caddyfile forwards two path sets."""
    root = Path(__file__).parent.parent
    compose = yaml.safe_load((root / "docker-compose.yml").read_text(encoding="utf-8"))
    published = {name for name, svc in compose["services"].items() if "ports" in svc}
    assert published == {"balancer"}
    balancer = compose["services"]["balancer"]
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in balancer["volumes"]
    assert "command" not in balancer  # the image's default: caddy run on that file
    caddyfile = (root / "deploy" / "Caddyfile").read_text(encoding="utf-8")
    matchers = re.findall(r"^\s*@public path (.+)$", caddyfile, flags=re.MULTILINE)
    assert len(matchers) == 1
    forwarded = matchers[0].split()
    proxies = re.findall(r"^\s*(handle|reverse_proxy)\b(.*)$", caddyfile, flags=re.MULTILINE)
    # The only reverse_proxy sits in the handle for @public.
    assert [p for p in proxies if p[0] == "reverse_proxy"] == [
        ("reverse_proxy", " bot-1:8080 bot-2:8080 bot-3:8080 {")
    ]
    assert ("handle", " @public {") in proxies

    def public(path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in forwarded)

    assert public("/slack/events") and public("/dashboard/") and public("/dashboard/login")
    assert public("/")  # the bot redirects it to the dashboard
    for private in ("/metrics", "/readyz", "/healthz", "/slack/eventsx", "/metrics/"):
        assert not public(private), private

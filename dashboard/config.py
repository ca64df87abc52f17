"""The dashboard's configuration: command-line flags plus secrets from files or the environment.

Secrets (the MQTT password and the page's access token) are never flags: a flag shows in `ps` and
in shell history. Each comes from a file named by a flag (what systemd's `LoadCredential=` hands
over) or from an environment variable, like the daemon's MQTT password. Every value is checked
here, before anything opens a socket or a database, so a mistake costs one line at start-up.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

MQTT_PASSWORD_ENV = "EDGE_EMOTION_DASHBOARD_MQTT_PASSWORD"
ACCESS_TOKEN_ENV = "EDGE_EMOTION_DASHBOARD_TOKEN"
DEFAULT_PREFIX = "edge-emotion/{device_id}/"
MIN_TOKEN_LENGTH = 8


class ConfigError(ValueError):
    """A configuration problem, worded for the person who typed the command."""


def default_db_path(env: dict[str, str]) -> Path:
    """Under XDG_STATE_HOME (~/.local/state): history is state, not configuration or cache."""
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "edge-emotion" / "dashboard.sqlite3"


@dataclass(frozen=True)
class DashboardConfig:
    broker_url: str = "mqtt://localhost:1883"
    mqtt_username: str = ""
    tls_ca: str = ""
    topic_prefix: str = DEFAULT_PREFIX
    share_group: str = ""  # MQTT 5 shared subscription group for events; empty: every event to us
    client_id: str = ""  # empty: derived from the host and the database path (see mqtt_ingest)
    host: str = "127.0.0.1"
    port: int = 8080
    db_path: Path = Path("dashboard.sqlite3")
    retention_days: float = 7.0
    trace_minutes: float = 10.0
    log_level: str = "info"
    mqtt_password: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)

    @property
    def broker(self) -> tuple[str, int, bool]:
        """(host, port, tls) of the broker URL."""
        parts = urlsplit(self.broker_url)
        tls = parts.scheme == "mqtts"
        return parts.hostname or "", parts.port or (8883 if tls else 1883), tls


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dashboard",
        description="Live dashboard and history of edge-emotion devices (MQTT in, web page out).")
    d = DashboardConfig()
    parser.add_argument("--broker", default=d.broker_url, metavar="URL",
                        help=f"mqtt://host:port or mqtts://host:port (default {d.broker_url})")
    parser.add_argument("--mqtt-username", default="", help="MQTT user name (a read-only dashboard user)")
    parser.add_argument("--mqtt-password-file", metavar="FILE",
                        help=f"file holding the MQTT password (or set {MQTT_PASSWORD_ENV})")
    parser.add_argument("--tls-ca", default="", metavar="FILE", help="CA certificate for mqtts://")
    parser.add_argument("--topic-prefix", default=DEFAULT_PREFIX,
                        help=f"the devices' topic prefix, {{device_id}} marking the device level "
                             f"(default {DEFAULT_PREFIX})")
    parser.add_argument("--share-group", default="", metavar="NAME",
                        help="receive events through the MQTT 5 shared subscription $share/NAME/..., "
                             "so several dashboard or ingest instances split the stream")
    parser.add_argument("--client-id", default="", help="MQTT client id (default: from host and --db)")
    parser.add_argument("--host", default=d.host,
                        help="address to serve the page on (default 127.0.0.1; any other address "
                             "needs an access token)")
    parser.add_argument("--port", type=int, default=d.port, help=f"HTTP port (default {d.port})")
    parser.add_argument("--access-token-file", metavar="FILE",
                        help=f"file holding the page's access token (or set {ACCESS_TOKEN_ENV})")
    parser.add_argument("--db", metavar="PATH",
                        help="SQLite history file (default $XDG_STATE_HOME/edge-emotion/dashboard.sqlite3)")
    parser.add_argument("--retention-days", type=float, default=d.retention_days,
                        help=f"keep events this long (default {d.retention_days:g})")
    parser.add_argument("--trace-minutes", type=float, default=d.trace_minutes,
                        help=f"length of the live valence/arousal trace (default {d.trace_minutes:g})")
    parser.add_argument("--log-level", default=d.log_level, choices=("debug", "info", "warning", "error"))
    return parser


def _secret(path: str | None, env_name: str, env: dict[str, str], what: str) -> str | None:
    """From the file when one is named, else the environment; a trailing newline is not part of it."""
    if path:
        try:
            return Path(path).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read the {what} file {path} ({exc.strerror})") from None
    return env.get(env_name)


def load_config(argv: list[str] | None = None, env: dict[str, str] | None = None) -> DashboardConfig:
    """Parse and validate; raises ConfigError (argparse itself exits 2 on unknown flags)."""
    env = dict(os.environ) if env is None else env
    args = build_parser().parse_args(argv)
    db_path = Path(args.db) if args.db else default_db_path(env)
    if not args.db:  # an explicit --db must name an existing folder (a typo is not a new folder)
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {db_path.parent} for the history ({exc.strerror}); "
                              "give --db") from None
    config = DashboardConfig(
        broker_url=args.broker, mqtt_username=args.mqtt_username, tls_ca=args.tls_ca,
        topic_prefix=args.topic_prefix, share_group=args.share_group, client_id=args.client_id,
        host=args.host, port=args.port, db_path=db_path,
        retention_days=args.retention_days, trace_minutes=args.trace_minutes, log_level=args.log_level,
        mqtt_password=_secret(args.mqtt_password_file, MQTT_PASSWORD_ENV, env, "MQTT password"),
        access_token=_secret(args.access_token_file, ACCESS_TOKEN_ENV, env, "access token"))
    validate(config)
    return config


def validate(c: DashboardConfig) -> None:
    _validate_broker_url(c.broker_url)
    levels = c.topic_prefix.split("/")
    if levels.count("{device_id}") != 1 or "{device_id}" in c.topic_prefix.replace("{device_id}", "", 1):
        raise ConfigError(f"--topic-prefix {c.topic_prefix!r} must hold {{device_id}} once, as a whole "
                          "topic level (e.g. edge-emotion/{device_id}/)")
    if not c.topic_prefix.endswith("/") or "+" in c.topic_prefix or "#" in c.topic_prefix:
        raise ConfigError(f"--topic-prefix {c.topic_prefix!r} must end with / and hold no MQTT wildcard")
    if c.share_group and any(ch in c.share_group for ch in "/+#"):
        raise ConfigError(f"--share-group {c.share_group!r} must not contain / + or #")
    if c.tls_ca and not Path(c.tls_ca).is_file():
        raise ConfigError(f"--tls-ca {c.tls_ca} does not exist or is not a file")
    if c.mqtt_password is not None and not c.mqtt_username:
        raise ConfigError("an MQTT password is set but no --mqtt-username")
    if not 0 < c.port < 65536:
        raise ConfigError(f"--port {c.port} must be between 1 and 65535")
    if c.retention_days <= 0:
        raise ConfigError(f"--retention-days {c.retention_days:g} must be positive")
    if not 0 < c.trace_minutes <= 120:
        raise ConfigError(f"--trace-minutes {c.trace_minutes:g} must be in (0, 120]")
    if c.access_token is not None and len(c.access_token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"the access token must be at least {MIN_TOKEN_LENGTH} characters")
    if c.db_path.is_dir():
        raise ConfigError(f"--db {c.db_path} is a folder; give a file path")


def _validate_broker_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"--broker {url!r} does not parse ({exc}); write mqtt://host:1883") from None
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"--broker {url!r} must start with mqtt:// or mqtts:// (e.g. mqtt://localhost:1883)")
    if not parts.hostname:
        raise ConfigError(f"--broker {url!r} has no host name (e.g. mqtt://localhost:1883)")
    if port == 0:
        raise ConfigError(f"--broker {url!r} has an invalid port")
    if parts.password or parts.username:
        raise ConfigError(f"--broker must not contain credentials; use --mqtt-username and "
                          f"--mqtt-password-file or {MQTT_PASSWORD_ENV}")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"--broker {url!r} must be only scheme, host and port (e.g. mqtt://localhost:1883)")

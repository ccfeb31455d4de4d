"""The one settings object, read once at start-up from ``QUANTRAC_*`` environment variables.

An unset broker or database URL is a start-up error (streams/runtime.py), unless ``embedded``
is on (``quantrac demo``, development): then the runtime starts a Tansu broker and an embedded
PostgreSQL under ``data_dir``. Every option is documented in ``deploy/env/*.env``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUANTRAC_", extra="ignore")

    kafka_url: str | None = Field(
        None,
        description="Kafka bootstrap servers, e.g. kafka://host:9092. Unset: a start-up error "
        "(or an embedded broker with embedded).",
    )
    database_url: str | None = Field(
        None,
        description="PostgreSQL/TimescaleDB conninfo URL. Unset: a start-up error (or an "
        "embedded PostgreSQL with embedded).",
    )
    embedded: bool = Field(
        False,
        description="Start an embedded broker/PostgreSQL for an unset URL (development; "
        "`quantrac demo` sets it). Needs the `embedded` extra, which images do not install.",
    )
    data_dir: Path = Field(Path("var"), description="Embedded data, archives and worker state.")
    topic_prefix: str = Field("", description="Prefix for every topic name (test isolation).")
    topic_partitions: int = Field(8, description="Partitions per keyed topic (caps worker count).")
    topic_replication: int = Field(1, description="Replication factor of created topics.")
    app_id: str = Field("quantrac", description="Faust app id (consumer group and changelogs).")
    completeness_threshold: float = Field(
        0.75, description="Minimum share of expected samples for a valid average."
    )
    late_horizon_hours: float = Field(
        72.0,
        description="Readings out of order by up to this much event time behind their series'"
        " newest reading correct their windows; older ones are stored and flagged late. A"
        " backlog that arrives in order is judged whatever its age.",
    )
    fused_stages: bool = Field(
        True,
        description="Run validate → average → check (and VN_AQI, water class, O2 correction) in"
        " one pass per raw message; false: a hop per stage through its topic.",
    )
    publish_valid_readings: bool = Field(
        False,
        description="With fused stages, also send the flagged readings to readings.valid (only"
        " the hop mode's averaging reads it; the readings table is their record). Costs about a"
        " tenth of the worker's CPU.",
    )
    faust_event_metrics: bool = Field(
        False,
        description="Also count every message, stream event, table read/write and send in"
        " Faust's faust_* metrics (per topic/stream/table). Off: those hooks cost about a tenth"
        " of the worker's CPU; commits, rebalances, offsets and consumer lag are kept.",
    )
    uvloop: bool = Field(
        True,
        description="Run the worker on uvloop's event loop (libuv); false: asyncio's own. The"
        " loop's dispatch is a large share of the worker's CPU, and uvloop's costs less.",
    )
    found_late_after_hours: float = Field(
        6.0, description="A violation event judged this long after its window ended says so."
    )
    future_tolerance_s: float = Field(
        300.0, description="Readings stamped further in the future are rejected."
    )
    outage_min_s: float = Field(
        900.0, description="Shortest silence (s) that raises a data-outage alert."
    )
    outage_intervals: int = Field(
        3, description="Missed reporting intervals that raise a data-outage alert."
    )
    clock_tick_s: float = Field(
        60.0, description="How often the leader worker checks every source for outages."
    )
    stream_batch: int = Field(
        5000,
        description="Most events a stateful agent handles per batch (one state write per key"
        " per batch: on a backlog, larger batches write state less often; a live feed's"
        " batches are cut by stream_batch_seconds long before).",
    )
    stream_batch_seconds: float = Field(
        0.05, description="Longest wait to fill an agent's batch (adds to latency)."
    )
    stream_batch_behind: int = Field(
        250,
        description="While this many events or more wait behind an agent's latest take (its"
        " consumer lag: a backlog, a replay), the next takes are merged into its batch, up to"
        " stream_batch (streams/takes.py). A live feed's lag is a handful of events. 0 turns"
        " merging off.",
    )
    persist_batch_rows: int = Field(5000, description="Rows per database batch (upper bound).")
    persist_batch_seconds: float = Field(
        0.2, description="Longest wait to fill a database batch (adds to latency)."
    )
    db_retry_max_s: float = Field(30.0, description="Longest backoff between DB retries.")
    web_port: int = Field(6066, description="Faust worker web port (serves /metrics).")
    web_host: str = Field(
        "127.0.0.1", description="Address the worker's web server binds (0.0.0.0 in containers)."
    )
    console_host: str = Field(
        "127.0.0.1", description="Address the console binds (0.0.0.0 in containers)."
    )
    console_port: int = Field(8080, description="Alert console HTTP port.")
    console_behind_tls: bool = Field(
        False,
        description="A reverse proxy serves the console over HTTPS: send HSTS (it is sent "
        "anyway on requests that arrive over TLS) and mark the console's cookies Secure.",
    )
    console_sse_keepalive_s: float = Field(
        15.0,
        gt=0,
        description="Keepalive of the live alert stream; each one re-checks the session.",
    )
    # Console logins (console/auth.py): hashing off the event loop, throttling, session lifetime.
    console_hash_concurrency: int = Field(
        2,
        ge=1,
        description="Password hashes/verifications run at once in threads (argon2id, 64 MiB "
        "each); more logins wait their turn, the rest of the console stays responsive.",
    )
    console_login_failures_per_user_ip: int = Field(
        5, ge=1, description="Failed logins for one username from one address before HTTP 429."
    )
    console_login_failures_per_ip: int = Field(
        20,
        ge=1,
        description="Failed logins from one address, any usernames (password spraying), "
        "before HTTP 429.",
    )
    console_login_window_s: float = Field(
        300.0, gt=0, description="Window (s) in which failed logins are counted."
    )
    console_session_idle_s: float = Field(
        12 * 3600.0, gt=0, description="A session unused this long (s) ends."
    )
    console_session_max_s: float = Field(
        24 * 3600.0,
        gt=0,
        description="A session ends this long (s) after its login, however active.",
    )
    public_map_tile_url: str = Field(
        "",
        description="Public page (/public): a map tile URL template with {z}, {x}, {y}, e.g. "
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png, drawn under the stations (its origin is "
        "added to the page's CSP img-src). Empty: the stations' map alone, no tile server.",
    )
    public_map_zoom: int = Field(
        10, ge=6, le=14, description="Public page: the map's Web Mercator zoom level."
    )
    api_requests_per_minute: float = Field(
        60.0, gt=0, description="Open-data API: requests a minute per token (token bucket)."
    )
    api_burst: int = Field(
        20, ge=1, description="Open-data API: requests a token may make at once (bucket size)."
    )
    api_token_cache_s: float = Field(
        5.0,
        ge=0,
        description="Gateway: how long (s) a looked-up ingest token is trusted before it is "
        "read again (a revocation takes effect within this).",
    )
    gateway_host: str = Field(
        "127.0.0.1",
        description="Address the gateway's FTP and HTTP ingest bind (0.0.0.0 in containers); "
        "the simulator connects to it (127.0.0.1 when it is 0.0.0.0).",
    )
    gateway_http_port: int = Field(8081, description="Gateway HTTP ingest port.")
    gateway_ftp_port: int = Field(2121, description="Gateway FTP port.")
    gateway_ftp_passive_ports: str | None = Field(
        None,
        pattern=r"^[0-9]+-[0-9]+$",
        description="FTP passive data ports, e.g. 30000-30009 (publish them with the FTP port "
        "behind NAT or in containers). Unset: any free port.",
    )
    gateway_ftp_masquerade_address: str | None = Field(
        None,
        description="Address the FTP server tells clients to open passive data connections to "
        "(the public one behind NAT). Unset: the address the client connected to.",
    )
    tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate (chain, server first). With tls_key_file: the console and "
        "the gateway's HTTP ingest serve HTTPS, and FTPS can be enabled (gateway_ftp_tls).",
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    gateway_ftp_tls: Literal["off", "explicit", "required"] = Field(
        "off",
        description="FTPS (explicit, AUTH TLS): off; explicit = offered; required = plain-text "
        "logins and data connections refused. Needs tls_cert_file and tls_key_file.",
    )
    # Ingest limits (stations/ingest_limits.py): what one station account may cost the gateway.
    gateway_max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=1024 * 1024,  # a Kafka message is capped near 1 MiB; evidence must fit in one
        description="Largest body one delivery may have (FTP file, HTTP body, MQTT message); "
        "larger is refused as file_too_large (FTP 552, HTTP 413).",
    )
    gateway_deliveries_per_minute: int = Field(
        600,
        ge=1,
        description="Deliveries one account may make in any 60 s; more are refused as "
        "rate_limited (FTP 450, HTTP 429; MQTT: counted, acknowledged, not published).",
    )
    gateway_max_rejections: int = Field(
        100,
        ge=1,
        description="Rejection records published per delivery; the rest become one "
        "too_many_rejections record (counts by reason, first and last line).",
    )
    gateway_ftp_max_cons_per_ip: int = Field(
        100,
        ge=1,
        description="Simultaneous FTP connections from one IP address (stations behind one NAT "
        "share it; the simulator holds one per source from 127.0.0.1).",
    )
    gateway_publish_timeout_s: float = Field(
        30.0, gt=0, description="Longest wait for the broker's acknowledgement of a delivery."
    )
    mqtt_url: str | None = Field(
        None,
        description="MQTT broker, e.g. mqtt://gateway:PASSWORD@127.0.0.1:1883 (the gateway's "
        "login, also written by `quantrac mqtt-acl`). Unset: no MQTT ingest.",
    )
    mqtt_topic_root: str = Field(
        "quantrac", description="MQTT topics are <root>/<source id>/readings."
    )
    registry_path: Path | None = Field(
        None, description="Station/source registry file. Unset: the one shipped in stations/."
    )
    # Forwarding of archived originals to downstream receivers (`quantrac forward`, issue 20)
    forward_destinations_file: Path | None = Field(
        None,
        description="YAML list of downstream receivers (stations/forward_config.py). Unset: "
        "`quantrac forward` refuses to start.",
    )
    forward_host: str = Field(
        "127.0.0.1", description="Address the forwarder's /metrics binds (0.0.0.0 in containers)."
    )
    forward_port: int = Field(8082, description="The forwarder's /metrics port.")
    forward_poll_s: float = Field(
        2.0, gt=0, description="Seconds between the forwarder's looks for newly archived files."
    )
    # Report periods (reports/periods.py): a longer one is refused (HTTP 400, CLI exit 2).
    report_max_days: int = Field(
        366,
        ge=1,
        description="Longest period (days) of a compliance, air quality or province report.",
    )
    export_max_days: int = Field(
        92, ge=1, description="Longest period (days) of a raw data export (a quarter)."
    )
    # Scheduled monthly reports (reports/scheduler.py, `quantrac scheduler`).
    schedule_hour: int = Field(
        6, ge=0, le=23, description="Local hour of the 1st of the month the reports are made."
    )
    schedule_catch_up_months: int = Field(
        3, ge=1, le=24, description="Months a run looks back for missed reports (downtime)."
    )
    schedule_format: Literal["pdf", "xlsx", "csv"] = Field("pdf", description="Report format.")
    schedule_lang: Literal["vi", "en"] = Field("vi", description="Report language.")
    schedule_poll_s: float = Field(
        300.0, gt=0, description="Seconds between the scheduler's checks for due reports."
    )
    schedule_max_attempts: int = Field(
        3, ge=1, description="Tries of a report that failed to build, or of its e-mail."
    )
    schedule_host: str = Field("127.0.0.1", description="Address of the scheduler's /healthz.")
    schedule_port: int | None = Field(
        None, ge=1, le=65535, description="Port of the scheduler's /healthz (unset: none)."
    )
    schedule_recipients_compliance: str = Field(
        "", description="Comma-separated e-mail addresses for the monthly compliance reports."
    )
    schedule_recipients_quality: str = Field(
        "", description="Comma-separated e-mail addresses for the monthly quality reports."
    )
    schedule_smtp_host: str | None = Field(None, description="SMTP server. Unset: no e-mail.")
    schedule_smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    schedule_smtp_starttls: bool = Field(True, description="STARTTLS before logging in.")
    schedule_smtp_user: str | None = Field(None, description="SMTP login (unset: none).")
    schedule_smtp_password: str | None = Field(None, description="SMTP password.")
    schedule_smtp_from: str = Field(
        "quantrac@localhost", description="Sender address of the report e-mails."
    )
    # Notifications (notify/, `quantrac notify`): routing rules, retries, channels' secrets.
    notify_rules: Path | None = Field(
        None,
        description="Routing rules file (YAML, deploy/notify-rules.example.yaml). Unset: "
        "no routes, nothing is sent.",
    )
    notify_poll_s: float = Field(
        5.0, gt=0, description="Seconds between the notifier's looks for new violation events."
    )
    notify_retry_base_s: float = Field(
        10.0, gt=0, description="First retry delay of a failed delivery; doubles per attempt."
    )
    notify_retry_max_s: float = Field(900.0, gt=0, description="Longest delay between retries.")
    notify_max_attempts: int = Field(
        30, ge=1, description="Attempts before a delivery is marked failed (kept in the log)."
    )
    notify_timeout_s: float = Field(10.0, gt=0, description="Timeout of one webhook/SMTP call.")
    notify_webhook_secret: str | None = Field(
        None, description="HMAC-SHA256 key of the webhook signature (needed by webhook routes)."
    )
    notify_console_url: str | None = Field(
        None, description="Console address put in messages as the acknowledgement link."
    )
    notify_host: str = Field("127.0.0.1", description="Address of the notifier's /metrics.")
    notify_port: int = Field(6070, description="Port of the notifier's /metrics.")
    notify_smtp_host: str | None = Field(
        None, description="SMTP server of e-mail routes (needed by e-mail routes)."
    )
    notify_smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    notify_smtp_security: Literal["off", "starttls", "ssl"] = Field(
        "starttls", description="SMTP transport security: off, starttls or ssl (SMTPS)."
    )
    notify_smtp_user: str | None = Field(None, description="SMTP login (unset: none).")
    notify_smtp_password: str | None = Field(None, description="SMTP password (never logged).")
    notify_smtp_from: str = Field(
        "quantrac@localhost", description="Sender address of notification e-mails."
    )
    log_level: str = Field("INFO", description="Python logging level.")

    @model_validator(mode="after")
    def _tls_complete(self) -> Settings:
        """A certificate without its key (or FTPS without either) is refused at start-up."""
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("QUANTRAC_TLS_CERT_FILE and QUANTRAC_TLS_KEY_FILE go together")
        if self.gateway_ftp_tls != "off" and self.tls_cert_file is None:
            raise ValueError(
                f"QUANTRAC_GATEWAY_FTP_TLS={self.gateway_ftp_tls} needs QUANTRAC_TLS_CERT_FILE "
                "and QUANTRAC_TLS_KEY_FILE"
            )
        return self

    @model_validator(mode="after")
    def _passive_range(self) -> Settings:
        if self.gateway_ftp_passive_ports:
            lo, hi = (int(p) for p in self.gateway_ftp_passive_ports.split("-"))
            if not 1024 <= lo <= hi <= 65535:
                raise ValueError(
                    f"QUANTRAC_GATEWAY_FTP_PASSIVE_PORTS={self.gateway_ftp_passive_ports}: "
                    "want LOW-HIGH with 1024 <= LOW <= HIGH <= 65535"
                )
        return self

    @property
    def tls_on(self) -> bool:
        """HTTPS for the console and the HTTP ingest (a certificate and its key are set)."""
        return self.tls_cert_file is not None

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

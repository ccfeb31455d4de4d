"""A real Prometheus (Debian's ``prometheus`` package) scrapes quantrac's /metrics on loopback.

Also: ``promtool`` checks the rules, runs their unit tests (deploy/prometheus/tests) and lints
the exposition; ``amtool`` checks the Alertmanager config. In CI a missing tool fails; on a
laptop it skips with the apt command to run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from core.metrics import Metrics
from core.settings import Settings
from streams.embedded import free_port
from tests.conftest import WorkerProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
APT = "apt-get update && apt-get install -y prometheus prometheus-alertmanager docker-compose"

pytestmark = pytest.mark.integration


def require_tool(name: str) -> str:
    """The tool's path; in CI a missing tool fails the test, elsewhere it skips with a reason."""
    path = shutil.which(name)
    if path:
        return path
    message = f"`{name}` not found; install it with: {APT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, capture_output=True, timeout=120, cwd=ROOT)


# ------------------------------------------------------------------ promtool / amtool


def test_promtool_check_config_and_rules() -> None:
    promtool = require_tool("promtool")
    result = run(promtool, "check", "config", str(PROM / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = sorted(str(p) for p in (PROM / "rules").glob("*.yml"))
    assert len(rules) == 2
    result = run(promtool, "check", "rules", *rules)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    tests = sorted(str(p) for p in (PROM / "tests").glob("*.yml"))
    assert tests, "no rule unit tests in deploy/prometheus/tests"
    result = run(promtool, "test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_accepts_the_alertmanager_config() -> None:
    amtool = require_tool("amtool")
    result = run(amtool, "check-config", str(ROOT / "deploy/alertmanager/alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ a populated registry

#: source id → (seconds since its last reading, today's completeness)
SOURCES = {"HD-KK-01": (30.0, 0.95), "HD-NM-02": (120.0, 0.8), "HD-NT-03": (2000.0, 0.4)}
#: (source id, severity band) → open violations
OPEN = {("HD-NT-03", "1.5-2"): 2.0, ("HD-KT-04", "<1.1"): 1.0, ("HD-KK-01", "<1.1"): 0.0}


def populated_metrics(now: float) -> Metrics:
    """A registry with the samples the pipeline produces for three sources at ``now``."""
    m = Metrics(CollectorRegistry())
    for source_id, (age_s, completeness) in SOURCES.items():
        m.last_reading.labels(source_id).set(now - age_s)
        m.completeness_today.labels(source_id).set(completeness)
    for (source_id, severity), n in OPEN.items():
        m.violations_open.labels(source_id, severity).set(n)
    m.readings_received.labels("ftp", "accepted").inc(120)
    m.readings_received.labels("ftp", "rejected").inc(3)
    m.rejections.labels("ftp", "unknown_unit").inc(3)
    m.qc_flags.labels("COD", "valid").inc(100)
    m.qc_flags.labels("COD", "spike").inc(2)
    m.averages_emitted.labels("1h", "true").inc(5)
    m.violation_events.labels("opened", "1.5-2").inc(2)
    for stage, seconds in (("validated", 0.02), ("averaged", 1800.0), ("stored", 0.4)):
        m.latency.labels(stage).observe(seconds)
    m.on_db_write("readings", 500, 0.03)
    m.on_db_error("readings", OSError("connection refused"))
    return m


def test_promtool_check_metrics_accepts_the_exposition() -> None:
    promtool = require_tool("promtool")
    body = generate_latest(populated_metrics(time.time()).registry)
    result = run(promtool, "check", "metrics", stdin=body)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_metrics_rejects_a_bad_exposition() -> None:
    """The lint above can fail: a counter without ``_total`` is refused."""
    promtool = require_tool("promtool")
    result = run(promtool, "check", "metrics", stdin=b"# HELP c x\n# TYPE c counter\nc 1\n")
    assert result.returncode != 0


# ------------------------------------------------------------------ real scrape


class MetricsServer:
    """Serves ``generate_latest(registry)`` on /metrics at a free loopback port."""

    def __init__(self, registry: CollectorRegistry) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = generate_latest(registry)
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MetricsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def fast_rules(directory: Path) -> list[str]:
    """The shipped rule files with every group evaluated each second (for a quick test)."""
    paths = []
    for path in sorted((PROM / "rules").glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc["groups"]:
            group["interval"] = "1s"
        out = directory / path.name
        out.write_text(yaml.safe_dump(doc))
        paths.append(str(out))
    return paths


class PrometheusServer:
    """A ``prometheus`` child scraping ``targets`` every second, storage in ``directory``."""

    def __init__(self, directory: Path, targets: list[str], job: str) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": fast_rules(directory),
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
        }
        self.config = directory / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = directory / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        binary = require_tool("prometheus")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self.ready, 60, message=self.log_tail)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self.proc.returncode}: {self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def api(self, expr: str) -> dict[str, Any]:
        query = urllib.parse.urlencode({"query": expr})
        url = f"http://127.0.0.1:{self.port}/api/v1/query?{query}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as e:  # 400 carries the parse error as JSON
            return dict(json.loads(e.read()))

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.api(expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        return list(answer["data"]["result"])

    def values(self, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
        return {
            tuple(r["metric"].get(label, "") for label in labels): float(r["value"][1])
            for r in self.query(expr)
        }

    def wait_for(self, expr: str, *labels: str, count: int = 1) -> dict[tuple[str, ...], float]:
        """Poll until ``expr`` returns at least ``count`` series; return them."""
        wait_until(lambda: len(self.query(expr)) >= count, 30, message=self.log_tail)
        return self.values(expr, *labels)


class Scraped(NamedTuple):
    prometheus: PrometheusServer
    now: float  # the Unix time the registry's timestamps are relative to


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """Prometheus with the shipped rules, having scraped a populated registry."""
    now = time.time()
    with (
        MetricsServer(populated_metrics(now).registry) as server,
        PrometheusServer(
            tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{server.port}"], "quantrac-test"
        ) as prometheus,
    ):
        prometheus.wait_for('up{job="quantrac-test"} == 1')
        yield Scraped(prometheus, now)


def test_prometheus_scrapes_the_per_source_series(scraped: Scraped) -> None:
    last = scraped.prometheus.wait_for(
        "quantrac_source_last_reading_timestamp_seconds", "source_id", count=len(SOURCES)
    )
    assert last == {
        (s,): pytest.approx(scraped.now - age, abs=1e-3) for s, (age, _) in SOURCES.items()
    }
    completeness = scraped.prometheus.values(
        "quantrac_source_completeness_today_ratio", "source_id"
    )
    assert completeness == {(s,): c for s, (_, c) in SOURCES.items()}


def test_prometheus_scrapes_the_violation_series(scraped: Scraped) -> None:
    got = scraped.prometheus.wait_for(
        "quantrac_violations_open", "source_id", "severity", count=len(OPEN)
    )
    assert got == OPEN
    by_band = scraped.prometheus.wait_for(
        "quantrac:violations_open_by_severity:sum", "severity", count=2
    )
    assert by_band == {("1.5-2",): 2.0, ("<1.1",): 1.0}
    assert scraped.prometheus.values(
        'quantrac_violation_events_total{event="opened"}', "severity"
    ) == {("1.5-2",): 2.0}


def test_recording_rules_run_on_the_scraped_series(scraped: Scraped) -> None:
    silent = scraped.prometheus.wait_for(
        "quantrac:source_silent_seconds", "source_id", count=len(SOURCES)
    )
    assert silent[("HD-KK-01",)] < 900 < silent[("HD-NT-03",)]
    assert scraped.prometheus.wait_for("quantrac:sources_silent:count") == {(): 1.0}
    kinds = scraped.prometheus.wait_for(
        "quantrac:kind_completeness_today_ratio:avg", "kind", count=3
    )
    assert kinds == {("ambient_air",): 0.95, ("surface_water",): 0.8, ("wastewater",): 0.4}


def test_station_silent_alert_fires_for_the_silent_source_only(
    scraped: Scraped,
) -> None:
    alerts = scraped.prometheus.wait_for(
        'ALERTS{alertname="QuantracSourceSilent"}', "source_id", "alertstate"
    )
    # `for: 1m`: pending first, firing a minute later (a slow machine may already be there).
    assert len(alerts) == 1
    ((source_id, state),) = alerts
    assert source_id == "HD-NT-03" and state in {"pending", "firing"}
    low = scraped.prometheus.wait_for('ALERTS{alertname="QuantracCompletenessLow"}', "source_id")
    assert low == {("HD-NT-03",): 1.0}


def dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "deploy/grafana/dashboards").glob("*.json")):
        stack = list(json.loads(path.read_text(encoding="utf-8"))["panels"])
        while stack:
            panel = stack.pop()
            stack.extend(panel.get("panels", []))
            out += [(f"{path.name}: {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
    return out


@pytest.mark.parametrize(
    ("panel", "expr"), dashboard_exprs(), ids=[p for p, _ in dashboard_exprs()]
)
def test_dashboard_query_is_valid_promql(scraped: Scraped, panel: str, expr: str) -> None:
    concrete = expr.replace("$source_id", "HD-NT-03").replace("$__rate_interval", "1m")
    answer = scraped.prometheus.api(concrete)
    assert answer["status"] == "success", f"{panel}: {answer.get('error')}"


# ------------------------------------------------------------------ a real worker


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


def _qc_total(body: bytes) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.decode().splitlines()
        if line.startswith("quantrac_qc_flags_total{")
    )


def test_prometheus_scrapes_a_running_worker(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
) -> None:
    """`quantrac worker` on loopback: promtool accepts its /metrics, Prometheus counts its work."""
    promtool = require_tool("promtool")
    require_tool("prometheus")
    from core.records import RawReading
    from core.topics import RAW, bootstrap_servers, ensure_topics
    from stations.feed import KafkaFeed
    from stations.registry import load_registry

    ensure_topics(settings)
    sources = [s for s in load_registry().sources if s.kind == "wastewater"][:3]
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    batch = [
        RawReading(
            source_id=source.id,
            parameter=spec.code.value,
            value=(spec.range[0] + spec.range[1]) / 4,
            unit=spec.unit.value,
            measured_at=start + timedelta(minutes=5 * i),
            status="00",
            received_at=start + timedelta(minutes=5 * i, seconds=3),
            channel="sim",
            origin="test_prometheus",
        )
        for source in sources
        for spec in source.parameters[:2]
        for i in range(4)
    ]

    async def produce() -> None:
        async with KafkaFeed(bootstrap_servers(settings), settings.topic(RAW.name)) as feed:
            await feed.send(batch)

    asyncio.run(produce())
    worker.start()
    url = f"http://127.0.0.1:{settings.web_port}/metrics"

    def judged_all() -> bool:
        try:
            return _qc_total(_fetch(url)) >= len(batch)
        except OSError:
            return False

    wait_until(judged_all, 120, message=worker.log)
    body = _fetch(url)
    result = run(promtool, "check", "metrics", stdin=body)
    assert result.returncode == 0, result.stdout + result.stderr

    target = f"127.0.0.1:{settings.web_port}"
    with PrometheusServer(tmp_path / "prometheus", [target], "quantrac-worker") as prometheus:
        up = prometheus.wait_for('up{job="quantrac-worker"} == 1', "instance")
        assert up == {(target,): 1.0}
        total = prometheus.wait_for("sum(quantrac_qc_flags_total)")
        assert total == {(): float(len(batch))}

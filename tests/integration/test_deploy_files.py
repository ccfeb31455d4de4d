"""The deployment files parse and hang together: compose, Kubernetes, Grafana, Prometheus.

No Docker engine or cluster runs here, so these are the checks that can be made for real: YAML
and JSON parse, the schemas (Kubernetes via ``kubernetes-validate``, compose via Debian's
``docker-compose config``) accept them, cross-references resolve, and every PromQL expression
in the dashboards and rules names a metric that ``core/metrics.py`` (or a recording rule)
actually exports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from core.metrics import Metrics
from core.settings import Settings
from stations.mqtt_acl import ACL_FILE, PASSWORD_FILE

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
PARTITIONS = 8  # QUANTRAC_TOPIC_PARTITIONS in deploy/env/production.env and the ConfigMap
#: A compose short-syntax port: [host address:]host port or range:container port or range.
PORT = r"(\d+\.\d+\.\d+\.\d+:)?\d+(-\d+)?:\d+(-\d+)?(/(tcp|udp))?"

#: Metrics the rules use that core/metrics.py does not declare yet; each is specified in
#: docs/metrics.md ("Proposed") for the process that will export it.
PROPOSED = {"quantrac_violations_unacknowledged_oldest_age_seconds"}
#: Series Prometheus itself creates.
PROMETHEUS_BUILTIN = {"up", "ALERTS", "ALERTS_FOR_STATE"}

pytestmark = pytest.mark.integration


def require_tool(name: str, apt_package: str) -> str:
    """The tool's path; in CI a missing tool fails the test, elsewhere it skips with a reason."""
    path = shutil.which(name)
    if path:
        return path
    message = f"`{name}` not found: apt-get install -y {apt_package}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


# ------------------------------------------------------------------ metric names


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry's families expose, labelled or not, sampled or not."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created", ""),
        "gauge": ("",),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def metrics_py_names() -> set[str]:
    return exported_names(Metrics(CollectorRegistry()).registry)


def default_collector_names() -> set[str]:
    """process_*/python_* series: every process serves the default registry, which has them."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return exported_names(registry)


def recording_rules() -> dict[str, str]:
    doc = yaml.safe_load(
        (DEPLOY / "prometheus/rules/quantrac-recording.yml").read_text(encoding="utf-8")
    )
    return {r["record"]: r["expr"] for g in doc["groups"] for r in g["rules"]}


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
_KEYWORDS |= {"and", "or", "unless", "offset", "inf", "nan", "Inf", "NaN"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions, keywords,
    label names (inside ``{}`` or grouping clauses), strings, durations or Grafana variables."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    s = re.sub(r"\boffset\s+\w+", "", s)
    s = re.sub(r"\$\{[^}]*\}|\$\w+", "", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        if s[m.end() :].lstrip().startswith("(") or m.group() in _KEYWORDS:
            continue
        names.add(m.group())
    return names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("quantrac_x_total", {"quantrac_x_total"}),
        ('sum by (le, stage) (rate(a_bucket{stage="x",b=~"y|z"}[5m]))', {"a_bucket"}),
        ("time() - max(b > 0) > 900", {"b"}),
        ('label_replace(c, "kind", "air", "source_id", "HD-KK-.*")', {"c"}),
        ('d{source_id="$source_id"} / ignoring(x) group_left e offset 1h', {"d", "e"}),
        ("count(f:g:h <= 900) or vector(0)", {"f:g:h"}),
        ("histogram_quantile(0.95, sum(rate(i[$__rate_interval])) by (le))", {"i"}),
    ],
)
def test_promql_metric_names_finds_selectors_only(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


def test_metrics_py_exports_the_names_the_catalogue_expects() -> None:
    names = metrics_py_names()
    assert "quantrac_source_last_reading_timestamp_seconds" in names
    assert "quantrac_readings_received_total" in names
    assert "quantrac_pipeline_latency_seconds_bucket" in names
    assert "quantrac_readings_received" not in names  # counters only as *_total / *_created


# ------------------------------------------------------------------ Grafana


def dashboard_exprs(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every target, rows' nested panels included."""
    stack = list(board.get("panels", []))
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield panel.get("title", "?"), target["expr"]


def variable_metrics(board: dict[str, Any]) -> Iterator[str]:
    for var in board.get("templating", {}).get("list", []):
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        m = re.match(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,", text)
        if m:
            yield m.group(1)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_valid_and_names_only_exported_metrics(path: Path) -> None:
    board = json.loads(path.read_text(encoding="utf-8"))
    assert board["uid"] and board["title"] and board["panels"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
    known = metrics_py_names() | set(recording_rules()) | default_collector_names()
    known |= PROMETHEUS_BUILTIN
    exprs = list(dashboard_exprs(board))
    assert exprs, f"{path.name} has no queries"
    for title, expr in exprs:
        unknown = promql_metric_names(expr) - known
        assert not unknown, f"{path.name}, panel {title!r}: unknown metrics {unknown} in {expr}"
    for name in variable_metrics(board):
        assert name in known, f"{path.name}: template variable queries unknown metric {name}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_uses_the_provisioned_datasource(path: Path) -> None:
    datasources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    uids = {d["uid"] for d in datasources}
    board = json.loads(path.read_text(encoding="utf-8"))
    used = {p["datasource"]["uid"] for p in board["panels"] if "datasource" in p}
    assert used and used <= uids, f"{path.name} uses datasources {used}, provisioned {uids}"


def test_dashboard_provider_path_is_where_compose_mounts_the_dashboards() -> None:
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/quantrac.yml").read_text(encoding="utf-8")
    )
    path = provider["providers"][0]["options"]["path"]
    grafana = compose()["services"]["grafana"]
    assert f"./grafana/dashboards:{path}:ro" in grafana["volumes"]


# ------------------------------------------------------------------ Prometheus rules


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rules_name_only_exported_recorded_or_proposed_metrics(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    known = metrics_py_names() | set(recording_rules()) | PROMETHEUS_BUILTIN | PROPOSED
    for group in doc["groups"]:
        for rule in group["rules"]:
            unknown = promql_metric_names(rule["expr"]) - known
            name = rule.get("alert") or rule.get("record")
            assert not unknown, f"{path.name}, {name}: unknown metrics {unknown}"


def test_every_alert_has_routing_severity_summary_and_runbook() -> None:
    doc = yaml.safe_load(
        (DEPLOY / "prometheus/rules/quantrac-alerts.yml").read_text(encoding="utf-8")
    )
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for group in doc["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            anchor = rule["annotations"]["runbook"].split("#")[1]
            assert f"## {anchor.replace('-', ' ')}".lower() in readme.lower(), rule["alert"]


def test_catalogue_lists_every_metric_and_every_proposed_one() -> None:
    catalogue = (ROOT / "docs/metrics.md").read_text(encoding="utf-8")
    families = {f.name for f in Metrics(CollectorRegistry()).registry.collect()}
    for name in families | PROPOSED:
        assert f"`{name}" in catalogue, f"docs/metrics.md does not list {name}"


def test_prometheus_config_loads_the_rule_files() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text(encoding="utf-8"))
    matched = {p for pattern in config["rule_files"] for p in (DEPLOY / "prometheus").glob(pattern)}
    assert matched == set(RULE_FILES)


# ------------------------------------------------------------------ compose


def compose() -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / "compose.yml").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


@pytest.mark.parametrize("name", sorted(services()))
def test_compose_service_is_complete(name: str) -> None:
    service = services()[name]
    known = set(services())
    assert "image" in service or "build" in service, f"{name}: no image or build"
    for env_file in service.get("env_file", []):
        assert (DEPLOY / env_file).is_file(), f"{name}: env_file {env_file} is missing"
    depends = service.get("depends_on", {})
    targets = set(depends) if isinstance(depends, (dict, list)) else set()
    assert targets <= known, f"{name}: depends_on unknown services {targets - known}"
    for port in service.get("ports", []):
        assert re.fullmatch(PORT, str(port)), port
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (DEPLOY / source).exists(), f"{name}: bind mount {source} is missing"
        else:
            assert source in compose()["volumes"], f"{name}: volume {source} is not declared"
    if service.get("restart") != "no":  # one-shots (migrate, mqtt-acl) exit when done
        assert "healthcheck" in service, f"{name}: no healthcheck"


def test_compose_has_the_whole_system() -> None:
    s = services()
    assert s["kafka"]["image"].startswith("apache/kafka:")
    assert s["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert re.fullmatch(r"timescale/timescaledb:\d+\.\d+\.\d+-pg16", s["timescaledb"]["image"])
    commands = {name: svc.get("command") for name, svc in s.items() if "build" in svc}
    assert commands == {
        "migrate": ["db", "migrate"],
        "mqtt-acl": ["mqtt-acl", "--out", "/var/lib/quantrac-mosquitto", "--readable"],
        "gateway": ["gateway"],
        "worker-1": ["worker"],
        "worker-2": ["worker"],
        "console": ["console"],
        "notify": ["notify"],
        "scheduler": ["scheduler"],
    }
    for name in ("worker-1", "worker-2", "console", "notify", "scheduler"):
        condition = s[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert {"prometheus", "alertmanager", "grafana"} <= set(s)


def test_compose_workers_have_distinct_ports_that_prometheus_scrapes() -> None:
    s = services()
    ports = {
        name: int(s[name]["environment"]["QUANTRAC_WEB_PORT"]) for name in s if "worker" in name
    }
    assert len(set(ports.values())) == len(ports) == 2
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text(encoding="utf-8"))
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    targets = {t for c in jobs["quantrac-worker"]["static_configs"] for t in c["targets"]}
    assert targets == {f"{name}:{port}" for name, port in ports.items()}
    for job in ("quantrac-gateway", "quantrac-console", "quantrac-notify"):
        for c in jobs[job]["static_configs"]:
            for target in c["targets"]:
                assert target.split(":")[0] in s, f"{job} scrapes unknown host {target}"


def test_quantrac_healthchecks_use_the_address_peers_use() -> None:
    """A process bound to 127.0.0.1 in its container passes a check on 127.0.0.1 yet is
    unreachable to Prometheus and its peers: compose checks use the service name, Kubernetes
    probes the pod IP (no ``host``)."""
    quantrac = {name: svc for name, svc in services().items() if svc.get("restart") != "no"}
    quantrac = {name: svc for name, svc in quantrac.items() if "build" in svc}
    assert set(quantrac) == {"gateway", "worker-1", "worker-2", "console", "notify", "scheduler"}
    for name, svc in quantrac.items():
        test = " ".join(svc["healthcheck"]["test"])
        assert "127.0.0.1" not in test and "localhost" not in test, (name, test)
        assert re.search(rf"//{re.escape(name)}:\d+/", test), (name, test)
    probes = 0
    for path, doc in k8s_docs():
        if doc["kind"] != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = container.get(kind)
                if probe is None:
                    continue
                probes += 1
                action = probe.get("httpGet") or probe.get("tcpSocket")
                assert action is not None, (path, container["name"], kind)
                assert "host" not in action, (path, container["name"], kind)
    assert probes >= 6


# ------------------------------------------------------------------ Mosquitto

MOSQUITTO_CONF = DEPLOY / "mosquitto" / "mosquitto.conf"


def mosquitto_options() -> dict[str, list[str]]:
    """Directive → its values, from the shipped mosquitto.conf."""
    options: dict[str, list[str]] = {}
    for line in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            options.setdefault(key, []).append(value.strip())
    return options


def env_file(name: str) -> dict[str, str]:
    env = {}
    for line in (DEPLOY / "env" / name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def mounts(volumes: list[str]) -> dict[str, tuple[str, bool]]:
    """Compose short-syntax volumes: container path → (source, read-only)."""
    out = {}
    for volume in volumes:
        source, target, *mode = volume.split(":")
        out[target] = (source, mode == ["ro"])
    return out


def test_mosquitto_conf_refuses_anonymous_clients_and_names_the_generated_files() -> None:
    options = mosquitto_options()
    assert options["listener"] == ["1883"]
    assert options["allow_anonymous"] == ["false"]
    assert options["per_listener_settings"] == ["false"]  # one rule for every listener
    assert options["use_username_as_clientid"] == ["true"]  # no taking another's session
    # the names `quantrac mqtt-acl` writes, in the directory compose and k8s mount
    assert options["password_file"] == [f"/mosquitto/auth/{PASSWORD_FILE}"]
    assert options["acl_file"] == [f"/mosquitto/auth/{ACL_FILE}"]
    assert options["persistence"] == ["true"]
    assert options["persistence_location"] == ["/mosquitto/data/"]
    # a packet the gateway would refuse as too large is refused by the broker already
    limit = Settings.model_fields["gateway_max_body_bytes"].metadata
    ceiling = next(m.le for m in limit if getattr(m, "le", None) is not None)
    assert ceiling < int(options["max_packet_size"][0]) <= ceiling + 4096


def test_compose_mosquitto_mounts_the_conf_and_the_files_mqtt_acl_writes() -> None:
    s = services()
    broker, acl, gateway = s["mosquitto"], s["mqtt-acl"], s["gateway"]
    assert re.fullmatch(r"eclipse-mosquitto:2\.\d+\.\d+", broker["image"]), broker["image"]
    theirs, ours = mounts(broker["volumes"]), mounts(acl["volumes"])
    assert theirs["/mosquitto/config/mosquitto.conf"] == ("./mosquitto/mosquitto.conf", True)
    # mqtt-acl writes into a volume the broker mounts read-only at the conf's paths
    out = acl["command"][acl["command"].index("--out") + 1]
    assert "--readable" in acl["command"]  # the broker runs as another user (uid 1883)
    auth_volume, _ = ours[out]
    assert theirs["/mosquitto/auth"] == (auth_volume, True)
    assert auth_volume not in {v for v, _ in mounts(gateway["volumes"]).values()}
    data_volume, read_only = theirs["/mosquitto/data"]
    assert data_volume in compose()["volumes"] and not read_only
    # mqtt-acl reads the accounts where the gateway keeps them (QUANTRAC_DATA_DIR)
    data_dir = env_file("production.env")["QUANTRAC_DATA_DIR"]
    assert ours[data_dir] == mounts(gateway["volumes"])[data_dir]
    # the broker and the gateway wait for the files; the gateway for the broker
    assert broker["depends_on"]["mqtt-acl"]["condition"] == "service_completed_successfully"
    assert gateway["depends_on"]["mqtt-acl"]["condition"] == "service_completed_successfully"
    assert gateway["depends_on"]["mosquitto"]["condition"] == "service_healthy"
    assert acl["restart"] == "no"
    assert "1883:1883" in broker["ports"]


def test_production_env_points_the_gateway_at_the_compose_broker() -> None:
    url = urlsplit(env_file("production.env")["QUANTRAC_MQTT_URL"])
    assert url.scheme == "mqtt" and url.hostname in services()
    assert url.port == int(mosquitto_options()["listener"][0])
    assert url.username == "gateway" and url.password == "CHANGE-ME"  # `secrets init` fills it


def test_defaults_env_lists_the_gateway_limits_and_mqtt_settings_with_their_defaults() -> None:
    text = (DEPLOY / "env" / "defaults.env").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^# (QUANTRAC_[A-Z0-9_]+)=(.*)$", text, re.MULTILINE))
    fields = Settings.model_fields
    for name in (
        "gateway_max_body_bytes",
        "gateway_deliveries_per_minute",
        "gateway_max_rejections",
        "gateway_ftp_max_cons_per_ip",
        "gateway_publish_timeout_s",
        "mqtt_url",
        "mqtt_topic_root",
    ):
        assert f"QUANTRAC_{name.upper()}" in listed, f"defaults.env does not list {name}"
    for key, value in listed.items():  # whatever is listed shows its real default
        field = fields[key.removeprefix("QUANTRAC_").lower()]
        default = "" if field.default is None else str(field.default)
        assert value.lower() == default.lower(), f"{key}={value}, default {default!r}"


def test_compose_passes_docker_compose_config() -> None:
    tool = require_tool("docker-compose", "docker-compose")
    result = subprocess.run(
        [tool, "-f", str(DEPLOY / "compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=DEPLOY,
    )
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------ Kubernetes


def k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [
            (path.name, d)
            for d in yaml.safe_load_all(path.read_text(encoding="utf-8"))
            if d is not None
        ]
    return docs


@pytest.mark.parametrize(
    ("path", "doc"),
    [pytest.param(p, d, id=f"{p}:{d.get('kind')}") for p, d in k8s_docs()],
)
def test_k8s_manifest_is_valid(path: str, doc: dict[str, Any]) -> None:
    import kubernetes_validate

    assert doc.get("apiVersion") and doc.get("kind"), path
    assert doc.get("metadata", {}).get("name"), f"{path}: {doc['kind']} has no metadata.name"
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_k8s_has_every_part_and_hpa_stays_within_partitions() -> None:
    kinds: dict[str, set[str]] = {}
    for _, doc in k8s_docs():
        kinds.setdefault(doc["kind"], set()).add(doc["metadata"]["name"])
    assert kinds["Deployment"] == {
        "quantrac-gateway",
        "quantrac-worker",
        "quantrac-console",
        "quantrac-scheduler",
    }
    assert kinds["Service"] >= {"quantrac-gateway", "quantrac-worker", "quantrac-console"}
    assert {"Namespace", "ConfigMap", "Secret", "Job", "HorizontalPodAutoscaler"} <= set(kinds)
    config = next(d for _, d in k8s_docs() if d["kind"] == "ConfigMap")
    partitions = int(config["data"]["QUANTRAC_TOPIC_PARTITIONS"])
    assert partitions == PARTITIONS
    for _, doc in k8s_docs():
        if doc["kind"] == "HorizontalPodAutoscaler":
            assert doc["spec"]["scaleTargetRef"]["name"] == "quantrac-worker"
            assert doc["spec"]["minReplicas"] <= doc["spec"]["maxReplicas"] <= partitions


def test_kustomization_lists_exactly_the_manifests() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def k8s_doc(kind: str, name: str) -> dict[str, Any]:
    return next(d for _, d in k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name)


def test_k8s_gateway_pod_runs_mqtt_acl_then_mosquitto_on_its_accounts() -> None:
    pod = k8s_doc("Deployment", "quantrac-gateway")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    containers = {c["name"]: c for c in pod["containers"]}
    broker, gateway = containers["mosquitto"], containers["gateway"]
    assert init["args"][:3] == ["mqtt-acl", "--out", "/var/lib/quantrac-mosquitto"]
    assert "--readable" in init["args"]
    assert broker["image"] == services()["mosquitto"]["image"]

    def mounted(container: dict[str, Any]) -> dict[str, tuple[str, bool]]:
        return {
            m["mountPath"]: (m["name"], m.get("readOnly", False)) for m in container["volumeMounts"]
        }

    # the same accounts volume as the gateway; the files into the one the broker reads
    assert mounted(init)["/var/lib/quantrac"] == mounted(gateway)["/var/lib/quantrac"]
    auth, _ = mounted(init)["/var/lib/quantrac-mosquitto"]
    assert mounted(broker)["/mosquitto/auth"] == (auth, True)
    assert "/var/lib/quantrac" not in mounted(broker)  # the broker never sees the accounts
    config, read_only = mounted(broker)["/mosquitto/config"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert read_only and volumes[config]["configMap"]["name"] == "quantrac-mosquitto"
    # the ConfigMap carries the shipped mosquitto.conf, unchanged
    data = k8s_doc("ConfigMap", "quantrac-mosquitto")["data"]
    assert data == {"mosquitto.conf": MOSQUITTO_CONF.read_text(encoding="utf-8")}
    # the gateway and mqtt-acl read the same login; the broker is in the pod
    for container in (init, gateway):
        refs = {e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e}
        assert "quantrac-mqtt" in refs, container["name"]
    secret = k8s_doc("Secret", "quantrac-mqtt")["stringData"]
    url = urlsplit(secret["QUANTRAC_MQTT_URL"])
    assert (url.hostname, url.port, url.username) == ("127.0.0.1", 1883, "gateway")
    ports = {p["name"]: p for p in k8s_doc("Service", "quantrac-gateway")["spec"]["ports"]}
    assert ports["mqtt"]["port"] == 1883 and ports["mqtt"]["targetPort"] == "mqtt"
    assert {"name": "mqtt", "containerPort": 1883} in broker["ports"]


def test_k8s_configmap_matches_production_env_where_both_set_a_key() -> None:
    env = {}
    for line in (DEPLOY / "env/production.env").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    config = next(d for _, d in k8s_docs() if d["kind"] == "ConfigMap")["data"]
    # URLs and replication legitimately differ between compose and a cluster.
    differing = {"QUANTRAC_KAFKA_URL", "QUANTRAC_TOPIC_REPLICATION"}
    for key in (set(env) & set(config)) - differing:
        assert config[key] == env[key], key


def test_compose_publishes_admin_services_on_loopback_only() -> None:
    """Grafana, Prometheus, Alertmanager and TimescaleDB are for the operators: their published
    ports are bound to the host's 127.0.0.1 (reached through a tunnel or an HTTPS proxy)."""
    s = services()
    for name in ("grafana", "prometheus", "alertmanager", "timescaledb"):
        for port in s[name].get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every address"


def test_shipped_placeholder_secrets_would_stop_every_process() -> None:
    """The database URL of the compose env file and of the k8s Secret ship with CHANGE-ME: a
    process started on either refuses to (`quantrac secrets init` or a real Secret first)."""
    from core.settings import Settings
    from streams.secret_check import SecretError, check_secrets

    secret = next(d for _, d in k8s_docs() if d["kind"] == "Secret")["stringData"]
    env = dict(
        line.split("=", 1)
        for line in (DEPLOY / "env/production.env").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    for url in (secret["QUANTRAC_DATABASE_URL"], env["QUANTRAC_DATABASE_URL"]):
        with pytest.raises(SecretError, match="QUANTRAC_DATABASE_URL"):
            check_secrets(Settings(database_url=url))


# ------------------------------------------------------------------ issue 17: deploy fixes


def k8s_images() -> dict[str, str]:
    """Container name (by manifest) → image, for every pod template in the manifests."""
    images = {}
    for path, doc in k8s_docs():
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            images[f"{path}:{c['name']}"] = c["image"]
    return images


def test_every_image_is_pinned_to_an_exact_version() -> None:
    """No `latest` and no floating tag: a restore needs the same TimescaleDB, and an upgrade of
    Kafka, Prometheus or Grafana is a decision, not a side effect of a restart."""
    exact = r"[a-z0-9./-]+:v?\d+\.\d+\.\d+(-pg\d+)?"
    images = {name: svc["image"] for name, svc in services().items()}
    images |= k8s_images()
    assert images["timescaledb"].startswith("timescale/timescaledb:")
    for name in ("kafka", "prometheus", "alertmanager", "grafana", "mosquitto"):
        assert name in images
    for name, image in images.items():
        assert re.fullmatch(exact, image), f"{name}: {image} is not an exact version"


def passive_range(text: str) -> range:
    first, _, last = text.partition("-")
    return range(int(first), int(last) + 1)


def test_compose_publishes_the_ftp_passive_range_of_the_env_file() -> None:
    env = env_file("production.env")
    ports = passive_range(env["QUANTRAC_GATEWAY_FTP_PASSIVE_PORTS"])
    assert len(ports) >= 2
    published = services()["gateway"]["ports"]
    assert f"{ports[0]}-{ports[-1]}:{ports[0]}-{ports[-1]}" in published  # 1:1, host = container
    # every process listens on all interfaces inside its container
    for key in ("QUANTRAC_WEB_HOST", "QUANTRAC_GATEWAY_HOST", "QUANTRAC_CONSOLE_HOST"):
        assert env[key] == "0.0.0.0", key
    # the masquerade address is the operator's (the host's public IP): shipped commented out
    text = (DEPLOY / "env" / "production.env").read_text(encoding="utf-8")
    assert "# QUANTRAC_GATEWAY_FTP_MASQUERADE_ADDRESS=" in text


def test_k8s_gateway_exposes_the_ftp_passive_range_of_the_configmap() -> None:
    config = k8s_doc("ConfigMap", "quantrac-settings")["data"]
    ports = set(passive_range(config["QUANTRAC_GATEWAY_FTP_PASSIVE_PORTS"]))
    assert config["QUANTRAC_GATEWAY_HOST"] == config["QUANTRAC_CONSOLE_HOST"] == "0.0.0.0"
    pod = k8s_doc("Deployment", "quantrac-gateway")["spec"]["template"]["spec"]
    gateway = next(c for c in pod["containers"] if c["name"] == "gateway")
    declared = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert ports <= set(declared.values())
    service = k8s_doc("Service", "quantrac-gateway")["spec"]["ports"]
    exposed = {p["port"] for p in service if declared.get(p["targetPort"]) == p["port"]}
    assert ports <= exposed


def test_k8s_gateway_keeps_its_data_and_station_accounts_on_a_claim() -> None:
    """The accounts file (ftp_users.json) and the archive live in the gateway's data dir: on an
    emptyDir every pod restart gave every station a new password and lost the originals."""
    deployment = k8s_doc("Deployment", "quantrac-gateway")
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    data_dir = k8s_doc("ConfigMap", "quantrac-settings")["data"]["QUANTRAC_DATA_DIR"]
    for container in pod["initContainers"] + pod["containers"]:
        for m in container.get("volumeMounts", []):
            if m["mountPath"] == data_dir:
                claim = volumes[m["name"]]["persistentVolumeClaim"]["claimName"]
                pvc = k8s_doc("PersistentVolumeClaim", claim)
                assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    gateway = next(c for c in pod["containers"] if c["name"] == "gateway")
    assert any(m["mountPath"] == data_dir for m in gateway["volumeMounts"])
    # one pod on a ReadWriteOnce volume: the old pod must let go before the new one starts
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_k8s_workers_have_a_disruption_budget_the_hpa_leaves_room_for() -> None:
    pdb = k8s_doc("PodDisruptionBudget", "quantrac-worker")["spec"]
    labels = k8s_doc("Deployment", "quantrac-worker")["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    hpa = k8s_doc("HorizontalPodAutoscaler", "quantrac-worker")["spec"]
    assert pdb["maxUnavailable"] == 1 < hpa["minReplicas"]
    # no budget for the single gateway: it would block every node drain
    budgets = [d for _, d in k8s_docs() if d["kind"] == "PodDisruptionBudget"]
    assert [d["metadata"]["name"] for d in budgets] == ["quantrac-worker"]


def test_optional_keda_scaler_follows_the_lag_of_the_real_consumer_group() -> None:
    """deploy/k8s/optional/: scaling on Kafka consumer lag (KEDA). Not in the kustomization
    (KEDA's own HPA replaces worker-hpa.yaml); its names must still be the pipeline's."""
    from core.topics import RAW

    path = K8S / "optional" / "keda-worker-scaledobject.yaml"
    scaled = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert scaled["apiVersion"] == "keda.sh/v1alpha1" and scaled["kind"] == "ScaledObject"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "quantrac-worker"
    hpa = k8s_doc("HorizontalPodAutoscaler", "quantrac-worker")["spec"]
    assert spec["minReplicaCount"] == hpa["minReplicas"]
    assert spec["maxReplicaCount"] <= PARTITIONS  # a worker beyond the partitions idles
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["behavior"]
    (trigger,) = spec["triggers"]
    meta = trigger["metadata"]
    config = k8s_doc("ConfigMap", "quantrac-settings")["data"]
    assert trigger["type"] == "kafka"
    assert meta["bootstrapServers"] == config["QUANTRAC_KAFKA_URL"].removeprefix("kafka://")
    assert meta["consumerGroup"] == Settings.model_fields["app_id"].default
    assert meta["topic"] == RAW.name
    assert meta["allowIdleConsumers"] == "false"
    assert int(meta["lagThreshold"]) > 0


def test_image_installs_the_font_the_pdf_reports_read() -> None:
    from reports.render_pdf import FONT, FONT_BOLD, FONT_DIR

    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    runtime = dockerfile[dockerfile.index(" AS runtime") :]
    installs = re.findall(r"apt-get install -y --no-install-recommends ([^\n\\&]+)", runtime)
    assert "fonts-dejavu-core" in " ".join(installs).split()
    # and that package is the one that ships the files render_pdf opens (Debian's dpkg database)
    dpkg = require_tool("dpkg", "dpkg")
    for name in (FONT, FONT_BOLD):
        result = subprocess.run(
            [dpkg, "-S", str(FONT_DIR / f"{name}.ttf")], capture_output=True, text=True
        )
        assert result.stdout.split(":")[0] == "fonts-dejavu-core", result.stderr


def test_operations_doc_names_what_the_files_ship() -> None:
    """docs/operations.md quotes the pinned database image, the passive range, the claim and the
    optional scaler: when a file changes, this points at the page to update."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert f"`{services()['timescaledb']['image']}`" in text
    assert f"={env_file('production.env')['QUANTRAC_GATEWAY_FTP_PASSIVE_PORTS']}`" in text
    assert "`quantrac-gateway-data`" in text
    assert "deploy/k8s/optional/keda-worker-scaledobject.yaml" in text
    for link in re.findall(r"\]\(([^)#]+)", text):
        assert (ROOT / "docs" / link).resolve().exists(), link

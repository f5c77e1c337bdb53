"""The deployment files: the container images, the Compose file and the Helm chart.

No Docker engine and no Kubernetes run in CI, so these tests check what can be checked
without one, and what an operator relies on:

- the chart lints and renders (helm is built from source by deploy/tools/helm.sh) with its
  default values and with values-existing-clusters.yaml, and every object it renders is
  valid against Kubernetes' own schemas (kubernetes-validate, strict: an unknown field is an
  error), for the oldest Kubernetes the chart allows and the newest the package knows;
- in what it renders: probes on /health and /ready, an autoscaler that scales the API,
  workers capped by the partition count, secrets referenced and never inlined, resources
  on every container, scrape annotations that name the ports the processes listen on,
  provisioning before anything else starts, and only settings the code reads;
- the Compose file is valid against the Compose specification's JSON schema, vendored
  byte for byte as deploy/compose/compose-spec.schema.json from the compose-spec/compose-spec
  repository, schema/compose-spec.json at commit a08f8d5 (2025-10-21, the newest change to
  that file), and its cluster is the 3 + 3 nodes it claims;
- the images' commands are commands the CLIs accept.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from backbone.cli import build_parser as backbone_parser
from connector.cli import build_parser as connector_parser
from deploy.container.healthcheck import target

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "backbone"
EXISTING = CHART / "values-existing-clusters.yaml"
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
COMPOSE_SCHEMA = ROOT / "deploy" / "compose" / "compose-spec.schema.json"
CONTAINER = ROOT / "deploy" / "container"
RELEASE = "prod"
# The chart's kubeVersion floor, and the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
# Environment variables that hold a secret: set only from a Secret, never as a value.
SECRET_ENV = re.compile(r"MASTER_KEY|SIGNING_SEED|CLIENTS$|PASSWORD|SECRET|API_KEY|STORAGE_KEY")
# In a container a process listens on every address: the pod's is not known in advance.
ANY_ADDRESS = "0.0.0.0"  # noqa: S104
VALUE_FILES = {"default": (), "existing-clusters": (EXISTING,)}

Manifest = dict[str, Any]

# Building helm from source takes minutes on a 2-core machine the first time (.ci/run starts
# it in the background early); the first test to need it waits for it.
pytestmark = pytest.mark.timeout(1800)


# ---------------------------------------------------------------- helm


@pytest.fixture(scope="module")
def helm() -> Path:
    done = subprocess.run(
        [str(ROOT / "deploy" / "tools" / "helm.sh"), "--path"],
        capture_output=True,
        text=True,
        timeout=1700,
        check=False,
    )
    if done.returncode == 3:  # no Go toolchain: said by the script
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


class RenderError(Exception):
    pass


def _render(helm: Path, files: tuple[Path, ...], sets: tuple[str, ...] = ()) -> list[Manifest]:
    argv = [str(helm), "template", RELEASE, str(CHART), "--namespace", "backbone"]
    argv += ["--kube-version", KUBE_VERSIONS[-1]]
    for file in files:
        argv += ["-f", str(file)]
    for value in sets:
        argv += ["--set", value]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RenderError(done.stderr)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=sorted(VALUE_FILES))
def rendered(request: pytest.FixtureRequest, helm: Path) -> list[Manifest]:
    return _render(helm, VALUE_FILES[request.param])


@pytest.fixture(scope="module")
def default(helm: Path) -> list[Manifest]:
    return _render(helm, ())


@pytest.fixture(scope="module")
def existing(helm: Path) -> list[Manifest]:
    return _render(helm, (EXISTING,))


def _one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} rendered"
    return found[0]


def _pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    for m in manifests:
        if m["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{m['kind']}/{m['metadata']['name']}", m["spec"]["template"]["spec"]


def _containers(manifests: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, spec in _pod_specs(manifests):
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield f"{where}/{container['name']}", container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def _container(manifests: list[Manifest], kind: str, name: str) -> dict[str, Any]:
    spec = _one(manifests, kind, name)["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = spec["containers"]
    assert len(containers) == 1
    return containers[0]


def test_chart_lints_with_both_values_files(helm: Path) -> None:
    for files in VALUE_FILES.values():
        argv = [str(helm), "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSIONS[-1]]
        argv += [f"--values={f}" for f in files]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_rendered_objects_are_valid_kubernetes_objects(
    rendered: list[Manifest], kube_version: str
) -> None:
    kinds = set()
    for manifest in rendered:
        try:
            kubernetes_validate.validate(manifest, kube_version, strict=True)
        except kubernetes_validate.ValidationError as err:
            where = "/".join(str(p) for p in err.path)
            name = f"{manifest['kind']} {manifest['metadata']['name']}"
            pytest.fail(f"{name}: {where}: {err.message}")
        kinds.add(manifest["kind"])
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Job"} <= kinds


def test_the_autoscaler_scales_the_api_deployment_by_cpu(rendered: list[Manifest]) -> None:
    hpa = _one(rendered, "HorizontalPodAutoscaler", f"{RELEASE}-backbone-api")
    target_ref = hpa["spec"]["scaleTargetRef"]
    api = _one(rendered, target_ref["kind"], target_ref["name"])
    assert api["spec"]["template"]["spec"]["containers"][0]["args"][0] == "api"
    # A fixed replica count would be put back by every `helm upgrade`, fighting the HPA.
    assert "replicas" not in api["spec"]
    assert hpa["spec"]["minReplicas"] >= 2  # one pod's restart is not an outage
    metric = hpa["spec"]["metrics"][0]["resource"]
    assert metric["name"] == "cpu"
    assert 0 < metric["target"]["averageUtilization"] <= 100
    # Utilization is a share of the request: without a CPU request the HPA cannot act.
    assert api["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    # No autoscaler for the workers: each join or leave pauses them all for a rebalance.
    scaled = {m["spec"]["scaleTargetRef"]["name"] for m in rendered if m["kind"].startswith("Hori")}
    assert scaled == {api["metadata"]["name"]}


def test_api_probes_health_for_liveness_and_ready_for_readiness(rendered: list[Manifest]) -> None:
    api = _container(rendered, "Deployment", f"{RELEASE}-backbone-api")
    port = int(api["args"][api["args"].index("--port") + 1])
    assert api["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert api["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert api["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    # /ready asks Kafka and Cassandra with 3 s each: a shorter probe timeout would fail it
    # on a slow but working store.
    assert api["readinessProbe"]["timeoutSeconds"] > 6
    service = _one(rendered, "Service", f"{RELEASE}-backbone-api")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pod_labels = _one(rendered, "Deployment", f"{RELEASE}-backbone-api")["spec"]["template"][
        "metadata"
    ]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_connector_is_probed_and_keeps_its_keys_on_a_volume(rendered: list[Manifest]) -> None:
    deployment = _one(rendered, "Deployment", f"{RELEASE}-backbone-connector")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    connector = spec["template"]["spec"]["containers"][0]
    assert connector["livenessProbe"]["httpGet"]["path"] == "/Monitoring/Version"
    assert connector["readinessProbe"]["httpGet"]["path"] == "/health"
    data_dir = _env(connector)["CONNECTOR_DATA_DIR"]["value"]
    mounts = {m["mountPath"]: m["name"] for m in connector["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    claim = volumes[mounts[data_dir]]["persistentVolumeClaim"]["claimName"]
    pvc = _one(rendered, "PersistentVolumeClaim", claim)
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    init = spec["template"]["spec"]["initContainers"][0]
    assert init["command"] == ["connector", "init", "--if-missing"]
    assert _env(init) == _env(connector)
    api_service = _one(rendered, "Service", f"{RELEASE}-backbone-api")
    host, port = api_service["metadata"]["name"], api_service["spec"]["ports"][0]["port"]
    assert _env(connector)["CONNECTOR_BACKBONE_URL"]["value"] == f"http://{host}:{port}"


def test_every_container_has_requests_and_a_memory_limit(rendered: list[Manifest]) -> None:
    for where, container in _containers(rendered):
        resources = container.get("resources", {})
        assert {"cpu", "memory"} <= resources.get("requests", {}).keys(), where
        assert "memory" in resources.get("limits", {}), where


def test_containers_run_unprivileged(rendered: list[Manifest]) -> None:
    for where, spec in _pod_specs(rendered):
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["automountServiceAccountToken"] is False, where
    for where, container in _containers(rendered):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, where
        assert context["readOnlyRootFilesystem"] is True, where


def test_secrets_come_from_secret_objects_never_from_values(rendered: list[Manifest]) -> None:
    seen = set()
    for where, container in _containers(rendered):
        for name, item in _env(container).items():
            if not SECRET_ENV.search(name):
                continue
            seen.add(name)
            assert "value" not in item, f"{where}: {name} is inlined"
            assert "secretKeyRef" in item["valueFrom"], f"{where}: {name}"
    assert {"BACKBONE_MASTER_KEY", "BACKBONE_SIGNING_SEED", "BACKBONE_CLIENTS"} <= seen
    assert {"CONNECTOR_CLIENT_SECRET", "CONNECTOR_API_KEY", "CONNECTOR_STORAGE_KEY"} <= seen
    for manifest in rendered:  # no secret in a ConfigMap either
        assert manifest["kind"] != "ConfigMap" or not any(
            SECRET_ENV.search(key.upper().replace("-", "_")) for key in manifest.get("data", {})
        )


def test_default_install_makes_keys_that_survive_and_fit_together(default: list[Manifest]) -> None:
    keys = _one(default, "Secret", f"{RELEASE}-backbone-keys")
    connector = _one(default, "Secret", f"{RELEASE}-backbone-connector-keys")
    for secret in (keys, connector):
        # Uninstalling must not take the master key: the log could not be read again.
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    data = {k: base64.b64decode(v).decode() for k, v in keys["data"].items()}
    for name in ("master-key", "signing-seed"):
        assert len(base64.b64decode(data[name], validate=True)) == 32, name
    client_secret = base64.b64decode(connector["data"]["client-secret"]).decode()
    assert data["clients"] == f"connector:{client_secret}"
    assert len(client_secret) >= 16  # what BACKBONE_CLIENTS requires
    assert len(base64.b64decode(base64.b64decode(connector["data"]["storage-key"]))) == 32
    api = _container(default, "Deployment", f"{RELEASE}-backbone-api")
    assert _env(api)["BACKBONE_MASTER_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": keys["metadata"]["name"],
        "key": "master-key",
    }


def test_existing_clusters_use_their_secrets_and_certificates(existing: list[Manifest]) -> None:
    assert not [m for m in existing if m["kind"] == "Secret"]  # production brings its own
    worker = _container(existing, "Deployment", f"{RELEASE}-backbone-worker")
    env = _env(worker)
    values = yaml.safe_load(EXISTING.read_text())
    assert env["BACKBONE_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["BACKBONE_KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
    assert env["BACKBONE_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": values["kafka"]["sasl"]["passwordSecret"]["name"],
        "key": "password",
    }
    username = env["BACKBONE_CASSANDRA_USERNAME"]["valueFrom"]["secretKeyRef"]
    assert username["name"] == values["cassandra"]["auth"]["usernameSecret"]["name"]
    assert env["BACKBONE_CASSANDRA_REPLICATION"]["value"] == "dc1:3"
    assert env["BACKBONE_CASSANDRA_TLS"]["value"] == "true"
    assert env["BACKBONE_MASTER_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "backbone-keys"
    # Each CA file the settings name is a mounted key of the Secret the values name.
    spec = _one(existing, "Deployment", f"{RELEASE}-backbone-worker")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in worker["volumeMounts"]}
    for store in ("kafka", "cassandra"):
        path = Path(env[f"BACKBONE_{store.upper()}_CA_FILE"]["value"])
        secret = volumes[mounts[str(path.parent)]]["secret"]
        ca = values[store]["tls"]["caSecret"]
        assert secret["secretName"] == ca["name"]
        assert {"key": ca["key"], "path": path.name} in secret["items"]
    # Provisioning connects with the same credentials.
    provision = _container(existing, "Job", f"{RELEASE}-backbone-provision")
    assert _env(provision)["BACKBONE_KAFKA_PASSWORD"] == env["BACKBONE_KAFKA_PASSWORD"]


def test_scrape_annotations_name_the_ports_the_processes_serve(rendered: list[Manifest]) -> None:
    for component in ("api", "worker"):
        deployment = _one(rendered, "Deployment", f"{RELEASE}-backbone-{component}")
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        ports = {p["containerPort"] for p in container["ports"]}
        assert int(annotations["prometheus.io/port"]) in ports, component
    worker = _container(rendered, "Deployment", f"{RELEASE}-backbone-worker")
    env = _env(worker)
    assert int(env["BACKBONE_WORKER_METRICS_PORT"]["value"]) == worker["ports"][0]["containerPort"]
    # The worker's endpoint listens on loopback unless told: Prometheus comes from outside.
    assert env["BACKBONE_WORKER_METRICS_HOST"]["value"] == ANY_ADDRESS
    assert worker["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    # faust serves the metrics only after the tables' recovery: the startup probe must give
    # that minutes (liveness waits for it), or a big recovery is killed and starts over.
    startup = worker["startupProbe"]
    assert startup["httpGet"] == worker["livenessProbe"]["httpGet"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert "initialDelaySeconds" not in worker["livenessProbe"]


def test_workers_are_capped_by_the_partition_count(helm: Path, default: list[Manifest]) -> None:
    worker = _one(default, "Deployment", f"{RELEASE}-backbone-worker")
    env = _env(_container(default, "Deployment", worker["metadata"]["name"]))
    partitions = int(env["BACKBONE_PARTITIONS"]["value"])
    assert worker["spec"]["replicas"] <= partitions
    # Rolling one worker at a time: no surge, since a surplus worker would rebalance twice.
    assert worker["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    _render(helm, (), ("partitions=4", "worker.replicas=4"))
    with pytest.raises(RenderError, match=r"worker.replicas \(5\) is above partitions \(4\)"):
        _render(helm, (), ("partitions=4", "worker.replicas=5"))


def test_provisioning_runs_before_the_release_starts(rendered: list[Manifest]) -> None:
    job = _one(rendered, "Job", f"{RELEASE}-backbone-provision")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"pre-install", "pre-upgrade"}
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["provision"]
    # A pre-install hook runs before the chart's own Secret exists; it needs no key anyway.
    assert "BACKBONE_MASTER_KEY" not in _env(container)
    api_env = _env(_container(rendered, "Deployment", f"{RELEASE}-backbone-api"))
    for name, item in _env(container).items():  # the same cluster, topics and replication
        assert api_env[name] == item, name


def test_values_a_backbone_would_refuse_fail_at_render_time(helm: Path) -> None:
    for sets, message in (
        (("kafka.securityProtocol=SASL_SSLL",), "securityProtocol"),
        (("kafka.bootstrapServers=x:9092",), "bootstrapServers"),  # a typo
        (("cassandra.replication=dc1=3",), "replication"),
        (("kafka.minInsyncReplicas=4",), "minInsyncReplicas"),
        (("kafka.securityProtocol=SASL_SSL",), "kafka.sasl.mechanism"),
        (("cassandra.auth.username=backbone",), "passwordSecret"),
        (("secrets.existingSecret=mine",), "connector.existingSecret"),
    ):
        with pytest.raises(RenderError, match=re.escape(message)):
            _render(helm, (), sets)


@cache
def _code() -> str:
    """Every Python source the images install, as one text."""
    parts = ("backbone", "api", "streams", "store", "connector", "schemas", "deploy")
    sources = [path for part in parts for path in (ROOT / part).rglob("*.py")]
    return "\n".join(path.read_text() for path in sources)


def test_every_setting_the_chart_sets_is_read_by_the_code(rendered: list[Manifest]) -> None:
    for where, container in _containers(rendered):
        for name in _env(container):
            assert f'"{name}"' in _code(), f"{where}: {name} is read nowhere"


def test_container_commands_are_commands_the_clis_accept(rendered: list[Manifest]) -> None:
    for where, container in _containers(rendered):
        if "args" in container:  # the backbone image: its entrypoint is `backbone`
            backbone_parser().parse_args(container["args"])
        else:
            program, *argv = container["command"]
            assert program == "connector", where
            connector_parser().parse_args(argv)


# ---------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    # Its "$schema" is draft-07 spelt without the "#" jsonschema looks the draft up by.
    assert schema["$schema"].rstrip("#").endswith("draft-07/schema")
    validator_class = jsonschema.Draft7Validator
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )
    # The schema itself catches a misspelt key (not only that the YAML parses).
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["restart_policy"] = "always"
    assert list(validator_class(schema).iter_errors(broken))


def _services(compose: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if re.fullmatch(rf"{prefix}-\d", n)}


def test_compose_runs_a_three_broker_kraft_cluster(compose: dict[str, Any]) -> None:
    brokers = _services(compose, "kafka")
    assert len(brokers) == 3
    envs = [b["environment"] for b in brokers.values()]
    assert len({e["CLUSTER_ID"] for e in envs}) == 1
    assert sorted(e["KAFKA_NODE_ID"] for e in envs) == [1, 2, 3]
    voters = {f"{e['KAFKA_NODE_ID']}@{name}:9093" for name, e in zip(brokers, envs, strict=True)}
    for env in envs:
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for name, broker in brokers.items():
        assert broker["environment"]["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert broker["volumes"] == [f"{name}:/var/lib/kafka/data"]
        assert "healthcheck" in broker


def test_compose_runs_a_three_node_ring_joining_one_at_a_time(compose: dict[str, Any]) -> None:
    nodes = _services(compose, "cassandra")
    assert len(nodes) == 3
    assert len({n["environment"]["CASSANDRA_CLUSTER_NAME"] for n in nodes.values()}) == 1
    for seed in nodes["cassandra-1"]["environment"]["CASSANDRA_SEEDS"].split(","):
        assert seed in nodes
    assert nodes["cassandra-2"]["depends_on"] == {"cassandra-1": {"condition": "service_healthy"}}
    assert nodes["cassandra-3"]["depends_on"] == {"cassandra-2": {"condition": "service_healthy"}}


def test_compose_backbone_replicates_as_far_as_its_cluster_allows(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["provision"]["environment"]
    brokers = _services(compose, "kafka")
    nodes = _services(compose, "cassandra")
    assert env["BACKBONE_KAFKA_BOOTSTRAP"].split(",") == [f"{b}:9092" for b in brokers]
    assert env["BACKBONE_CASSANDRA_CONTACT_POINTS"].split(",") == list(nodes)
    assert int(env["BACKBONE_KAFKA_REPLICATION_FACTOR"]) == len(brokers)
    assert int(env["BACKBONE_KAFKA_MIN_INSYNC_REPLICAS"]) == len(brokers) - 1
    datacenter = nodes["cassandra-1"]["environment"]["CASSANDRA_DC"]
    assert env["BACKBONE_CASSANDRA_REPLICATION"] == f"{datacenter}:{len(nodes)}"
    # Provisioning waits for every broker and the last node to join; the rest wait for it.
    waits = services["provision"]["depends_on"]
    assert {*brokers, "cassandra-3"} == set(waits)
    assert all(w["condition"] == "service_healthy" for w in waits.values())
    for name in ("worker", "api"):
        assert services[name]["depends_on"] == {
            "provision": {"condition": "service_completed_successfully"}
        }
        assert services[name]["deploy"]["replicas"] == 2
        assert services[name]["image"] == services["provision"]["image"]
    assert services["worker"]["deploy"]["replicas"] <= int(env["BACKBONE_PARTITIONS"])
    assert services["worker"]["environment"]["BACKBONE_WORKER_METRICS_HOST"] == ANY_ADDRESS
    assert services["connector"]["environment"]["CONNECTOR_BACKBONE_URL"] == "http://api:8080"


def test_compose_takes_every_key_from_the_environment(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if SECRET_ENV.search(variable):
                # `${NAME:?message}`: compose refuses to start without it; no literal key.
                assert re.fullmatch(r"([\w-]+:)?\$\{\w+:\?[^}]+\}", str(value)), (name, variable)
    make_env = (ROOT / "deploy" / "compose" / "make-env.sh").read_text()
    needed = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    assert needed == set(re.findall(r'echo "(\w+)=', make_env))
    assert ".env" in (ROOT / "deploy" / "compose" / ".gitignore").read_text().split()


def test_every_setting_compose_sets_is_read_by_the_code(compose: dict[str, Any]) -> None:
    for name in ("provision", "worker", "api", "connector"):
        for variable in compose["services"][name]["environment"]:
            assert f'"{variable}"' in _code(), f"{name}: {variable} is read nowhere"


def test_compose_builds_from_the_dockerfiles_in_the_repository(compose: dict[str, Any]) -> None:
    for name in ("provision", "connector"):
        build = compose["services"][name]["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).is_file()


# ---------------------------------------------------------------- images


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def _final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    steps = _instructions(dockerfile)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


@pytest.mark.parametrize("image", ["backbone", "connector"])
def test_image_runs_as_an_unprivileged_user_with_a_healthcheck(image: str) -> None:
    dockerfile = CONTAINER / f"{image}.Dockerfile"
    final = _final_stage(dockerfile)
    base = final[0][1]
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", base), base  # a tag, not a digest
    users = [arg for word, arg in final if word == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) > 0
    healthcheck = [arg for word, arg in final if word == "HEALTHCHECK"]
    assert len(healthcheck) == 1 and "deploy.container.healthcheck" in healthcheck[0]
    installs = " ".join(arg for word, arg in final if word == "RUN")
    assert "pip install" in installs and "--no-index" in installs  # the wheels built above
    # Everything the builder copies exists, and the ignore file lets it through.
    ignored = (CONTAINER / f"{image}.Dockerfile.dockerignore").read_text().split()
    for word, arg in _instructions(dockerfile):
        if word == "COPY" and "--from" not in arg:
            *sources, _ = [a for a in shlex.split(arg) if not a.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), source
                assert f"!{source.split('/')[0]}" in ignored, source


def test_backbone_image_default_command_is_the_api() -> None:
    final = dict(_final_stage(CONTAINER / "backbone.Dockerfile"))
    assert json.loads(final["ENTRYPOINT"]) == ["backbone"]
    args = backbone_parser().parse_args(json.loads(final["CMD"]))
    assert args.command == "api" and args.host == ANY_ADDRESS


def test_connector_image_creates_its_identity_once_then_serves() -> None:
    script = (CONTAINER / "connector-run.sh").read_text().splitlines()
    commands = [line for line in script if line.startswith(("connector", "exec"))]
    assert commands == ["connector init --if-missing", "exec connector serve"]
    for command in commands:
        argv = command.removeprefix("exec ").split()
        assert argv[0] == "connector"
        connector_parser().parse_args(argv[1:])


def test_healthcheck_asks_each_process_what_it_can_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKBONE_API_PORT", "8081")
    monkeypatch.setenv("BACKBONE_WORKER_METRICS_PORT", "9200")
    monkeypatch.setenv("CONNECTOR_PORT", "8095")
    api = ["/usr/local/bin/python", "/usr/local/bin/backbone", "api", "--host", ANY_ADDRESS]
    worker = ["/usr/local/bin/python", "-m", "faust", "-A", "streams.app", "worker"]
    connector = ["/usr/local/bin/python", "/usr/local/bin/connector", "serve"]
    assert target(api) == "http://127.0.0.1:8081/health"
    assert target(worker) == "http://127.0.0.1:9200/metrics"
    assert target(connector) == "http://127.0.0.1:8095/Monitoring/Version"
    assert target(["/bin/sh", "/usr/local/bin/connector-run"]) == (
        "http://127.0.0.1:8095/Monitoring/Version"
    )
    monkeypatch.setenv("BACKBONE_WORKER_METRICS_PORT", "0")
    assert target(worker) is None  # no endpoint: the engine's own "is it running" is all

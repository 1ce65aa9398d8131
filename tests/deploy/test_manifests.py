"""deploy/: every manifest validates offline (kubernetes-validate), each overlay renders with real kustomize
(``kubectl kustomize``) and the rendered objects validate and hang together: references, probes, security,
scraping, secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.common import DEPLOY, K8S_VERSION, OVERLAYS
from tests.deploy.kustomize import KustomizeError, build, kustomization, load_docs, pod_specs

kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate not installed (test extra)")

WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet"}
HEALTH_PORT = 13133
METRICS_PORT = 8888
DURATION = re.compile(r"^(\d+(ms|s|m|h))+$")


# ---------------------------------------------------------------- what is in deploy/

def kustomization_dirs() -> list[Path]:
    return sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))


def resource_files() -> list[Path]:
    """Every manifest file a kustomization lists under resources, plus the example Secret(s)."""
    files: set[Path] = set(DEPLOY.rglob("secret.example.yaml"))
    for d in kustomization_dirs():
        for res in kustomization(d).get("resources", []):
            if (d / res).is_file():
                files.add((d / res).resolve())
    return sorted(files)


def referenced_files() -> set[Path]:
    """Files a kustomization uses: resources, patches, generator inputs."""
    used: set[Path] = set()
    for d in kustomization_dirs():
        k = kustomization(d)
        used.add((d / "kustomization.yaml").resolve())
        used |= {(d / r).resolve() for r in k.get("resources", []) if (d / r).is_file()}
        used |= {(d / p["path"]).resolve() for p in k.get("patches", [])}
        for gen in k.get("configMapGenerator", []):
            used |= {(d / f.rpartition("=")[2]).resolve() for f in gen.get("files", [])}
    return used


def validate_object(obj: dict[str, Any], where: str) -> None:
    if obj["apiVersion"].startswith("monitoring.coreos.com/"):
        check_servicemonitor(obj, where)
        return
    try:
        kv.validate(obj, K8S_VERSION, strict=True)
    except kv.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        raise AssertionError(f"{where}: {obj['kind']}/{obj['metadata'].get('name')}: {path}: {e.message}") from None
    except kv.SchemaNotFoundError as e:
        raise AssertionError(f"{where}: {e.message}") from None


def check_servicemonitor(obj: dict[str, Any], where: str) -> None:
    """No schema ships for the Prometheus Operator CRDs: check the structure of the fields we use."""
    what = f"{where}: ServiceMonitor"
    assert obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "ServiceMonitor", what
    assert set(obj) <= {"apiVersion", "kind", "metadata", "spec"}, what
    assert isinstance(obj["metadata"].get("name"), str) and obj["metadata"]["name"], what
    spec = obj["spec"]
    assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels",
                         "podTargetLabels", "sampleLimit"}, f"{what}: unexpected spec keys {set(spec)}"
    selector = spec["selector"]
    assert set(selector) <= {"matchLabels", "matchExpressions"} and selector, what
    for key, value in selector.get("matchLabels", {}).items():
        assert isinstance(key, str) and isinstance(value, str), what
    for expr in selector.get("matchExpressions", []):
        assert set(expr) <= {"key", "operator", "values"}, what
        assert expr["operator"] in ("In", "NotIn", "Exists", "DoesNotExist"), what
        assert isinstance(expr.get("values", []), list), what
    assert isinstance(spec["endpoints"], list) and spec["endpoints"], what
    for ep in spec["endpoints"]:
        assert set(ep) <= {"port", "targetPort", "path", "interval", "scrapeTimeout", "scheme", "honorLabels",
                           "relabelings", "metricRelabelings"}, f"{what}: endpoint keys {set(ep)}"
        assert isinstance(ep.get("port"), str) or "targetPort" in ep, what
        assert ep.get("path", "/metrics").startswith("/"), what
        for key in ("interval", "scrapeTimeout"):
            assert key not in ep or DURATION.match(ep[key]), f"{what}: {key} {ep[key]!r}"


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value = labels.get(expr["key"])
        op = expr["operator"]
        if (op == "In" and value not in expr["values"]) or (op == "NotIn" and value in expr["values"]):
            return False
        if (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, build(DEPLOY / "overlays" / request.param)


def of_kind(objs: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] in kinds]


def tracetriage_containers(objs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(workload, pod spec, container) for every tracetriage container."""
    out = []
    for w in of_kind(objs, *WORKLOADS):
        for pod in pod_specs(w):
            out += [(w, pod, c) for c in pod["containers"] if "tracetriage" in c["image"]]
    return out


# ---------------------------------------------------------------- the files

def test_layout() -> None:
    assert (DEPLOY / "base" / "kustomization.yaml").is_file()
    for overlay in OVERLAYS:
        k = kustomization(DEPLOY / "overlays" / overlay)
        assert "../../base" in k["resources"], f"{overlay} builds on the base"
    assert (DEPLOY / "dashboards" / "tracetriage.json").is_file()


def test_every_yaml_file_is_used() -> None:
    """No orphan manifest: each YAML file under deploy/ is used by a kustomization, or is the Secret example."""
    used = referenced_files()
    for path in DEPLOY.rglob("*.yaml"):
        if path.name == "secret.example.yaml":
            assert path.resolve() not in used, "the example Secret must not be applied by a kustomization"
            continue
        assert path.resolve() in used, f"{path.relative_to(DEPLOY)} is not referenced by any kustomization"


@pytest.mark.parametrize("path", resource_files(), ids=lambda p: str(p.relative_to(DEPLOY.resolve())))
def test_manifest_validates(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        validate_object(doc, str(path.relative_to(DEPLOY.resolve())))


def test_validator_is_not_vacuous() -> None:
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"selector": {"matchLabels": {"a": "b"}}, "replica": 2,
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}}}
    with pytest.raises(AssertionError, match="replica"):
        validate_object(bad, "test")
    with pytest.raises(AssertionError):
        check_servicemonitor({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                              "metadata": {"name": "x"}, "spec": {"selector": {}, "endpoints": []}}, "test")


def test_example_secret_holds_no_real_values() -> None:
    for doc in load_docs(DEPLOY / "base" / "secret.example.yaml"):
        assert doc["kind"] == "Secret" and "data" not in doc
        for key, value in doc["stringData"].items():
            assert key in ("username",) or value.startswith("REPLACE-"), f"{doc['metadata']['name']}.{key}"


# ---------------------------------------------------------------- the renderer itself

def test_kustomize_refuses_files_outside_the_kustomization(tmp_path: Path) -> None:
    """The renderer is kustomize itself, with its default load restrictor: the overlays cannot depend on a
    file outside their tree that a cluster's ``kubectl apply -k`` would refuse."""
    root = tmp_path / "overlay"
    root.mkdir()
    (root / "kustomization.yaml").write_text("resources: [../outside.yaml]\n")
    (tmp_path / "outside.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: o}\n")
    with pytest.raises(KustomizeError, match=r"outside|restrictor|not in or below"):
        build(root)


# ---------------------------------------------------------------- rendered overlays

def test_rendered_objects_validate(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, objs = rendered
    assert of_kind(objs, *WORKLOADS), overlay
    for obj in objs:
        validate_object(obj, f"overlays/{overlay} (rendered)")


def test_configmap_references_resolve(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, objs = rendered
    configmaps = {o["metadata"]["name"]: o for o in of_kind(objs, "ConfigMap")}
    assert all(re.search(r"-[bcdfghkmt2-9]{10}$", name) for name in configmaps), "generated names carry a hash"
    for w in of_kind(objs, *WORKLOADS):
        for pod in pod_specs(w):
            for vol in pod.get("volumes", []):
                if "configMap" in vol:
                    assert vol["configMap"]["name"] in configmaps, f"{overlay}: {w['metadata']['name']}: {vol}"


def test_tracetriage_containers(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """Probes on the health port, security context, resources, config and catalog mounts, scrape annotations."""
    overlay, objs = rendered
    configmaps = {o["metadata"]["name"]: o for o in of_kind(objs, "ConfigMap")}
    found = tracetriage_containers(objs)
    assert found, overlay
    for w, pod, c in found:
        where = f"{overlay}: {w['metadata']['name']}/{c['name']}"
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            get = c[probe]["httpGet"]
            port = ports.get(get["port"], get["port"])
            assert port == HEALTH_PORT and get["path"] == "/", f"{where}: {probe} on the health endpoint"
        assert METRICS_PORT in ports.values(), where
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, where
        assert sc["capabilities"]["drop"] == ["ALL"], where
        assert sc.get("runAsNonRoot", pod.get("securityContext", {}).get("runAsNonRoot")) is True, where
        uid = sc.get("runAsUser", pod.get("securityContext", {}).get("runAsUser"))
        assert uid == 10001, where
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][bound]), f"{where}: resources.{bound}"
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        catalog = volumes[mounts["/etc/tracetriage/catalog"]]["configMap"]["name"]
        assert catalog.startswith("tracetriage-catalog-"), where
        assert {"/tmp", "/var/lib/tracetriage"} <= set(mounts), f"{where}: writable dirs on a read-only root"
        # the config file the args name is a key of the ConfigMap mounted at its directory
        config_path = Path(c["args"][c["args"].index("--config") + 1])
        cm_name = volumes[mounts[str(config_path.parent)]]["configMap"]["name"]
        assert config_path.name in configmaps[cm_name]["data"], where
        annotations = w["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", where
        assert annotations["prometheus.io/port"] == str(METRICS_PORT), where
        assert annotations["prometheus.io/path"] == "/metrics", where
        assert c["image"].endswith(":0.1.0"), where


def test_secrets_come_from_secret_key_refs(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """PagerDuty keys and SASL passwords only through secretKeyRef, to Secrets the example documents."""
    overlay, objs = rendered
    assert not of_kind(objs, "Secret"), f"{overlay}: Secrets are created by the user, never rendered"
    documented = {(d["metadata"]["name"], k) for d in load_docs(DEPLOY / "base" / "secret.example.yaml")
                  for k in d["stringData"]}
    for w, _pod, c in tracetriage_containers(objs):
        env = {e["name"]: e for e in c.get("env", [])}
        for name, e in env.items():
            if re.search(r"PASSWORD|ROUTING_KEY|TOKEN|SECRET", name):
                assert "value" not in e, f"{overlay}: {name} must not be a literal"
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert (ref["name"], ref["key"]) in documented, f"{overlay}: {name} -> {ref} not in secret.example.yaml"
        assert "PD_ROUTING_KEY" in env or "KAFKA_BROKERS" in env, w["metadata"]["name"]
        if "KAFKA_SASL_PASSWORD" in env:
            assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "tracetriage-kafka-sasl"


def test_services_hpa_pdb_servicemonitor_point_at_real_things(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, objs = rendered
    workloads = of_kind(objs, *WORKLOADS)
    services = of_kind(objs, "Service")
    for svc in services:
        pods = [w for w in workloads if selector_matches({"matchLabels": svc["spec"]["selector"]},
                                                         w["spec"]["template"]["metadata"]["labels"])]
        assert pods, f"{overlay}: Service {svc['metadata']['name']} selects no workload"
        port_names = {p["name"] for w in pods for c in w["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{overlay}: {svc['metadata']['name']} targetPort {port}"
    for w in workloads:
        assert selector_matches(w["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"]), w["metadata"]
    names = {(w["kind"], w["metadata"]["name"]) for w in workloads}
    for hpa in of_kind(objs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["name"]) in names, f"{overlay}: HPA {ref}"
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    for pdb in of_kind(objs, "PodDisruptionBudget"):
        assert any(selector_matches(pdb["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
                   for w in workloads), f"{overlay}: PDB selects nothing"
    monitors = of_kind(objs, "ServiceMonitor")
    assert monitors, f"{overlay}: a ServiceMonitor scrapes the collectors"
    for sm in monitors:
        hits = [s for s in services if selector_matches(sm["spec"]["selector"], s["metadata"].get("labels", {}))]
        assert hits, f"{overlay}: ServiceMonitor {sm['metadata']['name']} selects no Service"
        for ep in sm["spec"]["endpoints"]:
            for svc in hits:
                assert ep["port"] in {p["name"] for p in svc["spec"]["ports"]}, f"{overlay}: {ep} on {svc['metadata']}"


def test_gateway_overlay_shape() -> None:
    objs = build(DEPLOY / "overlays" / "gateway")
    (svc,) = of_kind(objs, "Service")
    assert {p["port"] for p in svc["spec"]["ports"]} >= {4317, 4318}
    (hpa,) = of_kind(objs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    (pdb,) = of_kind(objs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"


def test_sidecar_overlay_adds_container_to_the_app() -> None:
    objs = build(DEPLOY / "overlays" / "sidecar")
    (app,) = of_kind(objs, "Deployment")
    containers = {c["name"]: c for c in app["spec"]["template"]["spec"]["containers"]}
    assert sorted(containers) == ["app", "tracetriage"], "the patch adds the sidecar and keeps the app container"
    app_env = {e["name"]: e.get("value") for e in containers["app"]["env"]}
    assert app_env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://127.0.0.1:4318")
    (cm,) = [o for o in of_kind(objs, "ConfigMap") if o["metadata"]["name"].startswith("tracetriage-config-")]
    config = yaml.safe_load(cm["data"]["config.yaml"])
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith("127.0.0.1:4317}")


def test_sampling_tier_one_consumer_group_and_partitions_guidance() -> None:
    root = DEPLOY / "overlays" / "sampling-tier"
    objs = build(root)
    (sampler,) = [o for o in of_kind(objs, "Deployment") if o["metadata"]["name"] == "tracetriage-sampler"]
    (agent,) = of_kind(objs, "DaemonSet")
    env = {e["name"]: e for e in sampler["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "value" in env["KAFKA_GROUP_ID"], "one literal group id shared by every sampler pod"
    (hpa,) = of_kind(objs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["maxReplicas"] >= sampler["spec"]["replicas"]
    guidance = (root / "kustomization.yaml").read_text() + (root / "sampler.yaml").read_text()
    assert "replicas <= partitions" in guidance and "maxReplicas" in guidance
    cms = {o["metadata"]["name"].rsplit("-", 1)[0]: o for o in of_kind(objs, "ConfigMap")}
    sampler_cfg = yaml.safe_load(cms["tracetriage-config"]["data"]["config.yaml"])
    agent_cfg = yaml.safe_load(cms["tracetriage-agent-config"]["data"]["config.yaml"])
    assert sampler_cfg["service"]["pipelines"]["traces"]["receivers"] == ["kafka"]
    assert agent_cfg["exporters"]["kafka"]["partition_traces_by_id"] is True
    assert agent_cfg["exporters"]["kafka"]["traces"]["topic"] == sampler_cfg["receivers"]["kafka"]["traces"]["topic"]
    agent_env = {e["name"]: e.get("value") for e in agent["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert agent_env["KAFKA_BROKERS"] == env["KAFKA_BROKERS"]["value"]
    assert agent_env["KAFKA_TOPIC"] == env["KAFKA_TOPIC"]["value"]

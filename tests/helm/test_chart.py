"""The Helm chart, rendered offline and checked against the Kubernetes schemas.

Helm itself renders (``helm-python-sdk`` carries Helm v4 as a library: no binary, no cluster);
``kubernetes-validate`` holds the API schemas, used in strict mode (unknown fields fail). The
ServiceMonitor is a CRD's resource, so it is checked against servicemonitor.schema.json here.
What the gateway itself reads from the chart (env settings, policy, keys, dashboard metrics) is
checked with the gateway's own code.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from gateway.auth import KeysFile
from gateway.events import events_target, schemes
from gateway.metrics import Metrics
from gateway.policy import parse_policy
from gateway.policy_binding import BindingsFile
from gateway.policy_tests import BINDINGS_FILE
from gateway.settings import ENV_PREFIX, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "guarded-gateway"
KUBE_VERSION = "1.30"
RELEASE = "gw"
NAMESPACE = "llm"
# Settings the chart emits only when the optional stores are enabled (read from Secrets).
STORE_SETTINGS = {"GATEWAY_RATELIMIT_REDIS_URL", "GATEWAY_EVENTS_URL"}
SERVICE_MONITOR_SCHEMA = json.loads(
    (Path(__file__).with_name("servicemonitor.schema.json")).read_text(encoding="utf-8")
)

Doc = dict[str, Any]


def render(values: dict[str, Any] | None = None) -> list[Doc]:
    """The release's manifests (a fresh copy each call: tests may change them)."""
    docs: list[Doc] = copy.deepcopy(_render(json.dumps(values or {}, sort_keys=True)))
    return docs


@functools.cache
def _render(values_json: str) -> list[Doc]:
    with helm.Chart.load(CHART) as chart:
        out = chart.render(json.loads(values_json), name=RELEASE, namespace=NAMESPACE)
    docs: list[Doc] = []
    for path, text in sorted(out.items()):
        if path.endswith(".yaml"):
            docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def production_values() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (CHART / "values-production.yaml").read_text(encoding="utf-8")
    )
    return data


def one(docs: list[Doc], kind: str, component: str | None = None) -> Doc:
    found = [
        d
        for d in docs
        if d["kind"] == kind
        and (
            component is None
            or d["metadata"]["labels"].get("app.kubernetes.io/component") == component
        )
    ]
    assert len(found) == 1, f"expected one {kind} ({component}), got {len(found)}"
    return found[0]


def container(deployment: Doc) -> Doc:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c  # type: ignore[no-any-return]


def env_of(c: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in c.get("env", [])}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def validate_manifest(doc: Doc) -> None:
    if doc["apiVersion"].startswith("monitoring.coreos.com/"):
        jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA).validate(doc)
    else:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


@pytest.fixture(scope="module")
def default_docs() -> list[Doc]:
    return render()


@pytest.fixture(scope="module")
def production_docs() -> list[Doc]:
    return render(production_values())


def finetune_values() -> dict[str, Any]:
    args = ["adapter", "init", "demo", "--out", "/adapters/demo"]
    return {"finetune": {"enabled": True, "args": args}}


VARIANTS = {
    "default": {},
    "production": production_values(),
    "finetune": finetune_values(),
}


def all_variants() -> Iterator[tuple[str, Doc]]:
    for variant, values in VARIANTS.items():
        for doc in render(values):
            yield f"{variant}:{doc['kind']}/{doc['metadata']['name']}", doc


# --- the chart as Helm and Kubernetes see it -------------------------------------------------


@pytest.mark.parametrize("variant", ["default", "production"])
def test_lint_is_clean(variant: str) -> None:
    report = helm.lint(
        CHART, VARIANTS[variant], strict=True, namespace=NAMESPACE, kube_version="v1.30.0"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    checked = []
    for label, doc in all_variants():
        try:
            validate_manifest(doc)
        except Exception as exc:  # name the manifest in the failure
            pytest.fail(f"{label}: {exc}")
        checked.append(label)
    assert len(checked) >= 25


def test_a_broken_manifest_is_caught_by_strict_validation(default_docs: list[Doc]) -> None:
    service = json.loads(json.dumps(one(default_docs, "Service", "gateway")))
    service["spec"]["port"] = 80  # belongs in spec.ports[]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_manifest(service)
    monitor = one(render(production_values()), "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(monitor)


def test_default_release_is_minimal(default_docs: list[Doc]) -> None:
    kinds = sorted(d["kind"] for d in default_docs)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Deployment",
            "NetworkPolicy",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "Secret",
            "Service",
            "Service",
            "ServiceAccount",
        ]
    )


def test_production_release_has_the_scaling_and_monitoring_objects(
    production_docs: list[Doc],
) -> None:
    kinds = {d["kind"] for d in production_docs}
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"} <= kinds
    gateway = one(production_docs, "Deployment", "gateway")
    assert "replicas" not in gateway["spec"]  # the HPA owns it
    hpa = one(production_docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == gateway["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    pdb = one(production_docs, "PodDisruptionBudget")
    assert matches(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    service = one(production_docs, "Service", "gateway")
    monitor = one(production_docs, "ServiceMonitor")
    assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("http", "/metrics")]
    assert "http" in port_names
    vllm = one(production_docs, "Deployment", "vllm")
    assert vllm["spec"]["replicas"] == 2


# --- values.schema.json -------------------------------------------------------------------------


def test_schema_rejects_an_unknown_top_level_key() -> None:
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError, match="bogus"):
            chart.validate_schema({"bogus": True})
        with pytest.raises(helm.HelmValuesError, match="bogus"):
            chart.render({"bogus": True}, name=RELEASE)


def test_schema_rejects_a_misspelled_nested_key() -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError, match="replica"):
        chart.validate_schema({"gateway": {"replica": 3}})


def test_schema_accepts_the_shipped_values_files() -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema({})
        chart.validate_schema(production_values())


# --- the gateway pod -------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["default", "production"])
def test_gateway_probes_use_healthz_and_readyz(variant: str) -> None:
    c = container(one(render(VARIANTS[variant]), "Deployment", "gateway"))
    (port,) = c["ports"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert env_of(c)["GATEWAY_PORT"]["value"] == str(port["containerPort"])
    assert env_of(c)["GATEWAY_HOST"]["value"] == "0.0.0.0"
    assert c["command"] == ["gateway", "serve"]


@pytest.mark.parametrize("component", ["gateway", "finetune"])
def test_gateway_and_finetune_run_as_non_root_with_nothing_extra(component: str) -> None:
    docs = render(finetune_values())
    workload = one(docs, "Deployment" if component == "gateway" else "Job", component)
    pod = workload["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]


@pytest.mark.parametrize("variant", ["default", "production"])
def test_gateway_env_is_accepted_by_the_gateway_settings(
    variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = env_of(container(one(render(VARIANTS[variant]), "Deployment", "gateway")))
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    unknown = {name for name in env if name.startswith(ENV_PREFIX)} - known
    assert not unknown
    for name in list(env) + sorted(known):
        monkeypatch.delenv(name, raising=False)
    for name, var in env.items():
        monkeypatch.setenv(name, var.get("value", "from-a-secret"))
    settings = load_settings()
    assert settings.host == "0.0.0.0"
    assert str(settings.policy_file).startswith("/etc/")


def test_redis_and_postgres_env_appear_only_when_enabled(
    default_docs: list[Doc], production_docs: list[Doc]
) -> None:
    off = env_of(container(one(default_docs, "Deployment", "gateway")))
    on = env_of(container(one(production_docs, "Deployment", "gateway")))
    assert not STORE_SETTINGS & set(off)
    assert set(on) >= STORE_SETTINGS
    prod = production_values()
    redis_ref = on["GATEWAY_RATELIMIT_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert redis_ref == {"name": prod["redis"]["existingSecret"], "key": "redis-url"}
    url_ref = on["GATEWAY_EVENTS_URL"]["valueFrom"]["secretKeyRef"]
    assert url_ref == {"name": prod["postgresql"]["existingSecret"], "key": "events-url"}


def test_the_postgresql_url_from_its_secret_is_where_the_gateway_keeps_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = {"postgresql": {"enabled": True, "existingSecret": "pg", "secretKey": "url"}}
    env = env_of(container(one(render(values), "Deployment", "gateway")))
    ref = env["GATEWAY_EVENTS_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "pg", "key": "url"}
    secret = "postgresql://gateway:s3cret@pg.example:5432/events?sslmode=require"
    for name in {ENV_PREFIX + n.upper() for n in Settings.model_fields} | set(env):
        monkeypatch.delenv(name, raising=False)
    for name, var in env.items():
        if name.startswith(ENV_PREFIX):
            monkeypatch.setenv(name, var.get("value", secret))
    settings = load_settings()
    assert events_target(settings) == secret  # the URL wins over GATEWAY_EVENTS_PATH
    assert secret.split("://")[0] in schemes()
    assert "s3cret" not in repr(settings)


def test_postgresql_without_a_secret_is_refused() -> None:
    with (
        helm.Chart.load(CHART) as chart,
        pytest.raises(helm.HelmValuesError, match="existingSecret"),
    ):
        chart.validate_schema({"postgresql": {"enabled": True}})
    with pytest.raises((helm.HelmValuesError, helm.HelmRenderError), match="existingSecret"):
        render({"postgresql": {"enabled": True}})


def test_redis_without_a_secret_fails_to_render() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"redis\.existingSecret"):
        render({"redis": {"enabled": True}})


def test_policies_come_from_a_configmap_directory_and_parse(default_docs: list[Doc]) -> None:
    deployment = one(default_docs, "Deployment", "gateway")
    c = container(deployment)
    policy_file = Path(env_of(c)["GATEWAY_POLICY_FILE"]["value"])
    mount = next(m for m in c["volumeMounts"] if Path(m["mountPath"]) == policy_file.parent)
    assert "subPath" not in mount  # a subPath mount never sees ConfigMap updates
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    configmap = one(default_docs, "ConfigMap")
    assert volumes[mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"]
    assert policy_file.name in configmap["data"]
    shipped = {
        p.name: p.read_text(encoding="utf-8")
        for p in (REPO / "policies").glob("*.yaml")
        if not p.name.endswith(".tests.yaml")
    }
    assert configmap["data"] == shipped  # the repository's policies, their test cases left out
    for name, text in configmap["data"].items():
        if name == BINDINGS_FILE:  # which policy applies to which key or model
            BindingsFile.model_validate(yaml.safe_load(text))
        else:
            parse_policy(text, f"configmap:{name}")  # raises on an invalid policy
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    assert not any("polic" in key for key in annotations)  # hot reload, not a rollout


def test_custom_policy_files_replace_the_bundled_ones() -> None:
    text = (REPO / "policies" / "default.yaml").read_text(encoding="utf-8")
    docs = render({"policies": {"file": "strict.yaml", "files": {"strict.yaml": text}}})
    assert set(one(docs, "ConfigMap")["data"]) == {"strict.yaml"}
    env = env_of(container(one(docs, "Deployment", "gateway")))
    assert env["GATEWAY_POLICY_FILE"]["value"].endswith("/strict.yaml")


def test_keys_secret_is_the_gateway_keys_file_format() -> None:
    entry = {"name": "team-a", "sha256": "ab" * 32, "models": ["m"], "requests_per_minute": 60}
    docs = render({"keys": {"entries": [entry]}})
    secret = one(docs, "Secret")
    keys = KeysFile.model_validate_json(base64.b64decode(secret["data"]["keys.json"]))
    assert [k.model_dump(exclude_defaults=True) for k in keys.keys] == [entry]
    deployment = one(docs, "Deployment", "gateway")
    c = container(deployment)
    keys_file = Path(env_of(c)["GATEWAY_KEYS_FILE"]["value"])
    mount = next(m for m in c["volumeMounts"] if Path(m["mountPath"]) == keys_file.parent)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mount["name"]]["secret"]["secretName"] == secret["metadata"]["name"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    default_annotations = one(render(), "Deployment", "gateway")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["checksum/keys"] != default_annotations["checksum/keys"]


# --- vLLM and the adapters volume --------------------------------------------------------------


@pytest.mark.parametrize("variant", ["default", "production"])
def test_vllm_serves_lora_on_a_gpu_from_the_shared_adapters_volume(variant: str) -> None:
    docs = render(VARIANTS[variant])
    gateway, vllm = one(docs, "Deployment", "gateway"), one(docs, "Deployment", "vllm")
    g, v = container(gateway), container(vllm)
    assert v["image"].startswith("vllm/vllm-openai:")
    assert int(v["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert "--enable-lora" in v["args"]
    assert env_of(v)["VLLM_ALLOW_RUNTIME_LORA_UPDATING"]["value"] == "True"
    served = v["args"][v["args"].index("--served-model-name") + 1]
    assert served == env_of(g)["GATEWAY_BASE_MODEL"]["value"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert v[probe]["httpGet"]["path"] == "/health"

    def adapters_mount(deployment: Doc, c: Doc) -> tuple[str, str]:
        volumes = {x["name"]: x for x in deployment["spec"]["template"]["spec"]["volumes"]}
        for m in c["volumeMounts"]:
            claim = volumes[m["name"]].get("persistentVolumeClaim")
            if claim:
                return claim["claimName"], m["mountPath"]
        raise AssertionError("no adapters volume")

    g_claim, g_path = adapters_mount(gateway, g)
    v_claim, v_path = adapters_mount(vllm, v)
    assert g_claim == v_claim
    assert env_of(g)["GATEWAY_ADAPTERS_DIR"]["value"] == g_path
    assert env_of(g)["GATEWAY_UPSTREAM_ADAPTERS_DIR"]["value"] == v_path
    service = one(docs, "Service", "vllm")
    port = service["spec"]["ports"][0]["port"]
    url = f"http://{service['metadata']['name']}:{port}"
    assert env_of(g)["GATEWAY_UPSTREAM_URL"]["value"] == url


def test_network_policy_lets_only_gateway_pods_reach_vllm(default_docs: list[Doc]) -> None:
    gateway_pods = one(default_docs, "Deployment", "gateway")["spec"]["template"]["metadata"]
    vllm_deploy = one(default_docs, "Deployment", "vllm")
    vllm_pods = vllm_deploy["spec"]["template"]["metadata"]
    policy = one(default_docs, "NetworkPolicy", "vllm")
    spec = policy["spec"]
    assert matches(spec["podSelector"]["matchLabels"], vllm_pods["labels"])
    assert not matches(spec["podSelector"]["matchLabels"], gateway_pods["labels"])
    assert spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}  # no namespaceSelector / ipBlock widening it
    assert matches(peer["podSelector"]["matchLabels"], gateway_pods["labels"])
    assert not matches(peer["podSelector"]["matchLabels"], vllm_pods["labels"])
    vllm_port = container(vllm_deploy)["ports"][0]["containerPort"]
    assert rule["ports"] == [{"protocol": "TCP", "port": vllm_port}]


def test_finetune_job_is_off_by_default_and_runs_the_configured_command(
    default_docs: list[Doc],
) -> None:
    assert not [d for d in default_docs if d["kind"] == "Job"]
    job = one(render(finetune_values()), "Job")
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["finetune"]
    assert c["args"] == finetune_values()["finetune"]["args"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


# --- the Grafana dashboard ---------------------------------------------------------------------


def _exposed_names() -> dict[str, str]:
    """Sample name -> metric family, as the gateway's /metrics exposes them."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    names = {}
    for family in Metrics().registry.collect():
        for suffix in suffixes[family.type]:
            names[family.name + suffix] = family.name
    return names


def test_dashboard_queries_only_metrics_the_gateway_exposes_and_covers_them_all() -> None:
    dashboard = json.loads((REPO / "dashboards" / "grafana-gateway.json").read_text("utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {name for e in exprs for name in re.findall(r"\bgateway_[a-z0-9_]+", e)}
    exposed = _exposed_names()
    assert used - set(exposed) == set()
    assert {exposed[n] for n in used} == set(exposed.values())


def test_dashboard_configmap_carries_the_dashboard(production_docs: list[Doc]) -> None:
    configmap = next(d for d in production_docs if d["metadata"]["name"].endswith("-dashboard"))
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = (REPO / "dashboards" / "grafana-gateway.json").read_text(encoding="utf-8")
    assert json.loads(configmap["data"]["grafana-gateway.json"]) == json.loads(shipped)


def test_an_external_upstream_replaces_the_charts_vllm() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"gateway\.upstreamUrl is required"):
        render({"vllm": {"enabled": False}})
    url = "http://vllm.inference.svc:8000"
    docs = render({"vllm": {"enabled": False}, "gateway": {"upstreamUrl": url}})
    assert [d for d in docs if d["kind"] == "Deployment"] == [one(docs, "Deployment", "gateway")]
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy"] == [
        f"{RELEASE}-guarded-gateway"
    ]
    env = env_of(container(one(docs, "Deployment", "gateway")))
    assert env["GATEWAY_UPSTREAM_URL"]["value"] == url


def test_the_event_store_lives_on_a_writable_volume(default_docs: list[Doc]) -> None:
    # The root filesystem is read-only: the SQLite file must sit on a mounted, writable volume.
    deployment = one(default_docs, "Deployment", "gateway")
    c = container(deployment)
    path = env_of(c)["GATEWAY_EVENTS_PATH"]["value"]
    mounts = [m for m in c["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert mounts and not mounts[0].get("readOnly", False)
    volume = next(
        v
        for v in deployment["spec"]["template"]["spec"]["volumes"]
        if v["name"] == mounts[0]["name"]
    )
    assert "emptyDir" in volume or "persistentVolumeClaim" in volume

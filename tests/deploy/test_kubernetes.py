"""deploy/k8s rendered by `kubectl kustomize` (offline) and checked as the cluster would get it: probes
on the health endpoints, non-root pods, resources, autoscaling, disruption budgets, network policies
that keep the metrics ports to the monitoring namespace, the migration before every process, the
ingress routing only the public paths, and no secret value anywhere."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache

import pytest
import yaml

from tests.deploy.files import K8S

OVERLAY = K8S / "overlays" / "production"
API_PORT, HEALTH_PORT, SDK_METRICS_PORT, METRICS_PORT = 8080, 8081, 9464, 9465

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl is not installed: `kubectl kustomize` renders deploy/k8s (.ci/run installs Debian's "
    "kubernetes-client when it is missing)",
)


@cache
def rendered() -> tuple[dict, ...]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(OVERLAY)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in rendered() if doc["kind"] == kind}


def deployments() -> dict[str, dict]:
    found = objects("Deployment")
    assert set(found) == {"durapay-api", "durapay-worker"}
    return found


def named_port(container: dict, name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    return next(p["containerPort"] for p in container["ports"] if p["name"] == name_or_number)


def test_everything_lands_in_one_namespace_with_the_overlay_image() -> None:
    assert {doc["metadata"].get("namespace") for doc in rendered()} == {"durapay"}
    for deployment in deployments().values():
        spec = deployment["spec"]["template"]["spec"]
        for container in spec["initContainers"] + spec["containers"]:
            assert container["image"] == "registry.example.com/durapay:0.1.0"


def test_probes_use_the_health_endpoints() -> None:
    expected = {"durapay-api": ("api", API_PORT), "durapay-worker": ("worker", HEALTH_PORT)}
    for name, deployment in deployments().items():
        container_name, port = expected[name]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["name"] == container_name and container["args"] == [container_name]
        for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
            check = container[probe]["httpGet"]
            assert check["path"] == path and named_port(container, check["port"]) == port


def test_pods_run_unprivileged_with_resources() -> None:
    for name, deployment in deployments().items():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] >= 1000
        assert spec["automountServiceAccountToken"] is False
        for container in spec["initContainers"] + spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name


def test_the_schema_is_migrated_before_each_process_starts() -> None:
    for deployment in deployments().values():
        spec = deployment["spec"]["template"]["spec"]
        [init] = spec["initContainers"]
        [main] = spec["containers"]
        assert init["args"] == ["migrate"]
        assert init["env"] == main["env"] and init["volumeMounts"] == main["volumeMounts"]
        env = {item["name"]: item["value"] for item in main["env"]}
        mounts = {mount["mountPath"] for mount in main["volumeMounts"]}
        assert env["DURAPAY_CONFIG"].rsplit("/", 1)[0] in mounts and env["DURAPAY_SECRETS_DIR"] in mounts
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        assert volumes["secrets"]["secret"]["secretName"] == "durapay-secrets"
        assert volumes["config"]["configMap"]["name"] in objects("ConfigMap")
    assert not objects("Job"), "the migration runs as an init container, not a Job kustomize cannot order"


def test_autoscaling_and_disruption_budgets_cover_both_deployments() -> None:
    hpas = objects("HorizontalPodAutoscaler")
    assert {hpa["spec"]["scaleTargetRef"]["name"] for hpa in hpas.values()} == set(deployments())
    for hpa in hpas.values():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        [metric] = hpa["spec"]["metrics"]
        assert (
            metric["resource"]["name"] == "cpu"
            and 0 < metric["resource"]["target"]["averageUtilization"] <= 90
        )
    assert hpas["durapay-worker"]["spec"]["minReplicas"] == 3  # the overlay's patch applied
    pdbs = objects("PodDisruptionBudget")
    selected = {tuple(sorted(pdb["spec"]["selector"]["matchLabels"].items())) for pdb in pdbs.values()}
    pods = {
        tuple(sorted(d["spec"]["template"]["metadata"]["labels"].items())) for d in deployments().values()
    }
    assert selected == pods
    for pdb in pdbs.values():
        assert pdb["spec"]["minAvailable"] == 1


def policy_ports(policy: dict) -> set[int]:
    return {port["port"] for rule in policy["spec"].get("ingress", []) for port in rule["ports"]}


def test_network_policies_keep_metrics_ports_to_monitoring() -> None:
    policies = objects("NetworkPolicy")
    deny = policies["durapay-default-deny-ingress"]
    assert deny["spec"]["podSelector"] == {} and "ingress" not in deny["spec"]
    worker, api = policies["durapay-worker"], policies["durapay-api"]
    assert policy_ports(worker) == {SDK_METRICS_PORT, METRICS_PORT}
    [worker_rule] = worker["spec"]["ingress"]
    assert [peer["namespaceSelector"]["matchLabels"] for peer in worker_rule["from"]] == [
        {"kubernetes.io/metadata.name": "monitoring"}
    ]
    assert policy_ports(api) == {API_PORT}
    [worker_deployment] = [d for n, d in deployments().items() if n == "durapay-worker"]
    [container] = worker_deployment["spec"]["template"]["spec"]["containers"]
    assert {p["containerPort"] for p in container["ports"]} == {HEALTH_PORT, SDK_METRICS_PORT, METRICS_PORT}


def test_the_ingress_routes_only_the_public_paths() -> None:
    [ingress] = objects("Ingress").values()
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "pay.example.com"
    paths = {path["path"] for path in rule["http"]["paths"]}
    assert paths == {"/v1/", "/webhooks/"}  # not /, not /metrics, not /codec
    for path in rule["http"]["paths"]:
        assert path["pathType"] == "Prefix" and path["backend"]["service"]["name"] == "durapay-api"


def test_no_secret_values_in_the_rendered_manifests() -> None:
    assert not objects("Secret"), "the Secret is created out of band (deploy/README.md)"
    text = yaml.safe_dump_all(rendered())
    for pattern in (
        r"sk_(live|test)_",
        r"whsec_",
        r"postgres(ql)?(\+\w+)?://[^\s:]+:[^\s@]+@",
        r"BEGIN [A-Z ]*PRIVATE KEY",
    ):
        assert not re.search(pattern, text), pattern
    for configmap in objects("ConfigMap").values():
        for line in configmap["data"]["durapay.toml"].splitlines():
            key = line.split("=")[0].strip()
            assert not re.search(r"secret|password|api_keys|private_key|codec_keys|url$", key), line

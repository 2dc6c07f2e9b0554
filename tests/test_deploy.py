"""deploy/: the mistakes that would break a Kubernetes rollout without any error at apply time.

A wrong probe port, a grace period shorter than the gateway's drain, a Service that publishes the
admin listener, a routes.yaml the gateway refuses, a path in routes.yaml that no volume mounts, a
manifest kustomize never applies: `kubectl apply` accepts all of them.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from gateway.config import Config, parse_config
from gateway.ops.supervisor import GRACEFUL_STOP_SECONDS

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
KUBE = DEPLOY / "kubernetes"
KUSTOMIZATION = "kustomization.yaml"
EXAMPLE_ONLY = "secret.yaml"  # never applied: `apply -k` would overwrite the real Secrets
# The supervisor kills workers still running this long after SIGTERM (gateway/ops/supervisor.py).
SUPERVISOR_DEADLINE = GRACEFUL_STOP_SECONDS + 5


def _load() -> dict[str, list[dict[str, Any]]]:
    files = sorted([*KUBE.glob("*.yaml"), *KUBE.glob("*.yml")])
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        for path in files
    }


DOCS = _load()
MANIFESTS = [(name, doc) for name, docs in DOCS.items() if name != KUSTOMIZATION for doc in docs]


def _find(kind: str, name: str) -> dict[str, Any]:
    found = [
        doc for _, doc in MANIFESTS if doc.get("kind") == kind and doc["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


DEPLOYMENT = _find("Deployment", "gateway")
POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = next(c for c in POD["containers"] if c["name"] == "gateway")
PORTS = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
MOUNTS = {m["name"]: m for m in CONTAINER["volumeMounts"]}
VOLUMES = {v["name"]: v for v in POD["volumes"]}


def _port(value: int | str) -> int:
    """A probe's or Service's port, named ports resolved against the container."""
    return PORTS[value] if isinstance(value, str) else value


def _arg(flag: str) -> str:
    args = CONTAINER["args"]
    return str(args[args.index(flag) + 1])


def _mount_of(kind: str, name: str) -> PurePosixPath:
    """Where the volume holding ConfigMap/Secret ``name`` is mounted."""
    key = {"configMap": "name", "secret": "secretName"}[kind]
    volume = next(v for v in VOLUMES.values() if v.get(kind, {}).get(key) == name)
    return PurePosixPath(MOUNTS[volume["name"]]["mountPath"])


def _routes_config() -> Config:
    configmap = _find("ConfigMap", "gateway-config")
    # The variables come from the Deployment: one it does not set fails here, as it would in the
    # pod. A value taken from a Secret is stood in for.
    environ = {
        env["name"]: env["value"] if "value" in env else f"redis://{env['name'].lower()}:6379/0"
        for env in CONTAINER.get("env", [])
    }
    source = _mount_of("configMap", "gateway-config") / "routes.yaml"
    return parse_config(configmap["data"]["routes.yaml"], Path(str(source)), environ)


def test_the_expected_files_are_there() -> None:
    expected = {
        "namespace.yaml",
        "configmap.yaml",
        "secret.yaml",
        "deployment.yaml",
        "service.yaml",
        "redis.yaml",
        "poddisruptionbudget.yaml",
        KUSTOMIZATION,
    }
    assert expected <= set(DOCS)
    assert (DEPLOY / "Dockerfile").is_file()
    assert (DEPLOY / "Dockerfile.dockerignore").is_file()


@pytest.mark.parametrize(
    "doc", [doc for _, doc in MANIFESTS], ids=[f"{n}:{d.get('kind')}" for n, d in MANIFESTS]
)
def test_every_manifest_has_api_version_kind_and_name(doc: dict[str, Any]) -> None:
    assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"]
    assert isinstance(doc.get("kind"), str) and doc["kind"]
    assert isinstance(doc.get("metadata", {}).get("name"), str) and doc["metadata"]["name"]
    if doc["kind"] != "Namespace":
        assert doc["metadata"].get("namespace", "gateway") == "gateway"


# Every manifest of deploy/ (the cluster's, and the forward-auth examples'), against the schemas
# of this Kubernetes version, bundled with kubernetes-validate: no cluster, no network.
KUBERNETES_VERSION = "1.30.0"
SCHEMA_CHECKED = [
    (path.relative_to(DEPLOY), doc)
    for path in sorted([*KUBE.glob("*.yaml"), *(DEPLOY / "forward-auth").glob("*.yaml")])
    for doc in yaml.safe_load_all(path.read_text())
    if doc is not None
    and doc.get("kind") != "Kustomization"
    and "apiVersion" in doc
    and "http" not in doc  # deploy/forward-auth/traefik.yml is Traefik's, not Kubernetes'
]


@pytest.mark.parametrize(
    "doc", [doc for _, doc in SCHEMA_CHECKED], ids=[f"{p}:{d['kind']}" for p, d in SCHEMA_CHECKED]
)
def test_every_manifest_passes_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_refuses_a_broken_manifest() -> None:
    broken = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": "three"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_every_file_but_the_example_secret() -> None:
    (kustomization,) = DOCS[KUSTOMIZATION]
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert EXAMPLE_ONLY not in resources, "apply -k would replace the real keys and users"
    assert set(resources) == set(DOCS) - {KUSTOMIZATION, EXAMPLE_ONLY}
    assert kustomization.get("namespace") == "gateway"


def test_the_example_secret_holds_no_usable_key() -> None:
    (keys,) = [d for d in DOCS[EXAMPLE_ONLY] if d["metadata"]["name"] == "gateway-keys"]
    assert keys["stringData"], "the example should show the shape of the Secret"
    for name, pem in keys["stringData"].items():
        assert name.endswith(".pem")
        with pytest.raises(ValueError):
            serialization.load_pem_private_key(pem.encode(), password=None)


def test_probes_hit_the_admin_listener() -> None:
    admin_port = _routes_config().server.admin.port
    assert PORTS["admin"] == admin_port
    readiness = CONTAINER["readinessProbe"]["httpGet"]
    liveness = CONTAINER["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz"
    assert liveness["path"] == "/healthz"
    assert _port(readiness["port"]) == admin_port
    assert _port(liveness["port"]) == admin_port
    # /readyz pings the store with a 2 s timeout: a shorter probe timeout flaps.
    assert CONTAINER["readinessProbe"].get("timeoutSeconds", 1) > 2


def test_the_grace_period_outlasts_the_drain() -> None:
    grace = POD["terminationGracePeriodSeconds"]
    assert grace > 30
    command = CONTAINER["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    # Kubernetes counts the preStop hook against the grace period.
    assert grace >= float(command[1]) + SUPERVISOR_DEADLINE


def test_the_service_publishes_the_public_port_only() -> None:
    service = _find("Service", "gateway")
    admin_port = PORTS["admin"]
    for port in service["spec"]["ports"]:
        assert port["port"] != admin_port
        assert _port(port.get("targetPort", port["port"])) != admin_port
    (public,) = service["spec"]["ports"]
    assert public["port"] == 80
    assert _port(public["targetPort"]) == int(_arg("--port")) == 8080


def test_selectors_match_the_pods() -> None:
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    selectors = [
        DEPLOYMENT["spec"]["selector"]["matchLabels"],
        _find("Service", "gateway")["spec"]["selector"],
        _find("PodDisruptionBudget", "gateway")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()
    redis = _find("Deployment", "gateway-redis")
    assert not selectors[1].items() <= redis["spec"]["template"]["metadata"]["labels"].items()


def test_replicas_share_a_store() -> None:
    assert DEPLOYMENT["spec"]["replicas"] >= 2
    config = _routes_config()
    assert config.store.split("://")[0] in ("redis", "rediss", "postgresql", "postgres")


def test_routes_yaml_is_valid_and_matches_the_mounts() -> None:
    config = _routes_config()
    assert config.routes
    assert config.server.admin.host == "0.0.0.0"
    assert config.server.public_url.startswith("https://")
    # The image's CMD and the Deployment name the file where the ConfigMap is mounted.
    assert _arg("--config") == str(_mount_of("configMap", "gateway-config") / "routes.yaml")
    # Absolute paths, into the Secret volumes: relative ones would resolve inside the ConfigMap's
    # hidden timestamped folder.
    assert config.tokens.keys == Path(str(_mount_of("secret", "gateway-keys")))
    assert config.users.file is not None
    assert config.users.file.parent == Path(str(_mount_of("secret", "gateway-users")))


def test_mounts_update_in_place_on_a_read_only_root() -> None:
    for mount in CONTAINER["volumeMounts"]:
        assert "subPath" not in mount, "a subPath mount never sees ConfigMap/Secret updates"
    assert CONTAINER["securityContext"]["readOnlyRootFilesystem"] is True
    assert POD["securityContext"]["runAsNonRoot"] is True
    tmp = next(m for m in CONTAINER["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in VOLUMES[tmp["name"]]


def test_dockerfile_matches_the_deployment() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^EXPOSE\s+8080\s+9090\s*$", text, re.M)
    assert re.search(r"^STOPSIGNAL\s+SIGTERM\s*$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["gateway"\]\s*$', text, re.M)
    assert f'"--config", "{_arg("--config")}"' in text
    # Numeric, so that runAsNonRoot can check it.
    assert re.search(r"^USER\s+\d+(:\d+)?\s*$", text, re.M)
    assert POD["securityContext"]["runAsUser"] == 10001

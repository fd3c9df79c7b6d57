"""The deployment files: Kubernetes manifests against the API's schemas, the image's Dockerfile
and the compose file by their structure, and the image's install steps in a scratch folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from brandloop.db import migrate

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
KUBERNETES = "1.30.0"


def manifests() -> list[dict[str, Any]]:
    found = []
    for path in sorted((INFRA / "k8s").glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def by_kind(kind: str, name: str) -> dict[str, Any]:
    return next(m for m in manifests() if m["kind"] == kind and m.get("metadata", {}).get("name") == name)


@pytest.mark.parametrize(
    "manifest", manifests(), ids=lambda m: f"{m['kind']}/{m.get('metadata', {}).get('name', '')}"
)
def test_manifests_are_valid_kubernetes(manifest: dict[str, Any]) -> None:
    if manifest["kind"] == "Kustomization":  # kustomize's own file, not an API object
        listed = set(manifest["resources"])
        assert listed <= {p.name for p in (INFRA / "k8s").glob("*.yaml")}
        return
    kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


def test_the_manifests_run_api_and_workers_safely() -> None:
    kinds = {(m["kind"], m.get("metadata", {}).get("name")) for m in manifests()}
    assert {("Deployment", "brandloop-api"), ("Deployment", "brandloop-worker"), ("Job", "brandloop-migrate"),
            ("HorizontalPodAutoscaler", "brandloop-api"), ("PodDisruptionBudget", "brandloop-api"),
            ("ConfigMap", "brandloop"), ("Secret", "brandloop")} <= kinds  # fmt: skip
    api = by_kind("Deployment", "brandloop-api")["spec"]["template"]["spec"]
    (container,) = api["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for workload in [api, by_kind("Deployment", "brandloop-worker")["spec"]["template"]["spec"],
                     by_kind("Job", "brandloop-migrate")["spec"]["template"]["spec"]]:  # fmt: skip
        assert workload["securityContext"]["runAsNonRoot"] is True
        for c in workload["containers"]:
            assert c["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }
            assert {"configMapRef": {"name": "brandloop"}} in c["envFrom"] and {
                "secretRef": {"name": "brandloop"}
            } in c["envFrom"]
    # Only the example secret holds placeholders, and production settings refuse them.
    assert by_kind("ConfigMap", "brandloop")["data"]["BRANDLOOP_ENVIRONMENT"] == "production"


async def test_the_probed_paths_answer(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200


def test_the_image_is_multi_stage_non_root_and_checks_its_health() -> None:
    parser = DockerfileParser(path=str(INFRA / "Dockerfile"))
    stages: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    assert len(stages) >= 2
    final = {i["instruction"]: i["value"] for i in stages[-1]}
    final_text = " ".join(i["value"] for i in stages[-1])
    assert final["USER"].split(":")[0] not in ("", "0", "root")
    assert "/healthz" in final["HEALTHCHECK"]
    assert '"brandloop"' in final["ENTRYPOINT"] and '"serve"' in final["CMD"]
    assert "build-essential" not in final_text and "apt-get install" not in final_text  # no build tools
    assert "--from=build /opt/brandloop /opt/brandloop" in final_text
    assert "BRANDLOOP_ENVIRONMENT=production" in final_text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "*" in ignored and "!src/" in ignored and "!migrations/" in ignored


def test_compose_runs_migrations_once_then_two_apis_two_workers_and_prometheus() -> None:
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text())
    services = compose["services"]
    assert services["migrate"]["command"] == ["migrate"] and services["migrate"]["restart"] == "no"
    for name, command in (("api", "serve"), ("worker", "worker")):
        assert services[name]["command"] == [command] and services[name]["deploy"]["replicas"] == 2
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["build"]["dockerfile"] == "infra/Dockerfile"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    prometheus = yaml.safe_load((INFRA / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["dns_sd_configs"][0]["names"] == ["api"]
    caddy = (INFRA / "Caddyfile").read_text()
    assert "@internal path /metrics" in caddy and "dynamic a api 8000" in caddy  # metrics stay inside
    assert set((INFRA / "brandloop.env.example").read_text().split()) >= {"BRANDLOOP_ENVIRONMENT=production"}


def test_the_image_install_steps_give_a_working_brandloop(tmp_path: Path) -> None:
    """What the Dockerfile's build stage does, into a folder: a non-editable install ships the
    migrations and the built-in connectors."""
    source, wheels, target = tmp_path / "src", tmp_path / "wheels", tmp_path / "site"
    # The files the Dockerfile copies, and only those (a build leaves files next to its sources).
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("src", "migrations"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(source)], check=True, capture_output=True
    )
    (wheel,) = wheels.glob("brandloop-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True
    )
    probe = (
        "import brandloop, importlib.metadata as m; from brandloop.db import migrate; "
        "print(brandloop.__file__); print(migrate.head_revision()); "
        "print(sorted(e.name for e in m.entry_points(group='brandloop.connectors')))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(target)}, cwd=tmp_path,
    ).stdout.split("\n")  # fmt: skip
    assert shown[0].startswith(str(target))  # the installed copy, not the checkout
    assert shown[1] == migrate.head_revision()
    assert "'shopee'" in shown[2] and "'tiktok_shop'" in shown[2]


def test_the_validator_refuses_a_broken_manifest() -> None:
    broken = by_kind("Deployment", "brandloop-api")
    broken = {**broken, "spec": {**broken["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)
    unknown_field = {**by_kind("PodDisruptionBudget", "brandloop-api"), "extra": True}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown_field, KUBERNETES, strict=True)

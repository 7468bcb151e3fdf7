"""The images' pins agree with the package and with each other: every runtime dependency of
pyproject.toml is pinned in deploy/docker/requirements.in, every pin there is the version the lock
resolved, and torch and Ray are the same version everywhere they are named (Ray requires the API's
driver and every node to run the same Ray)."""
from __future__ import annotations

import re
import tomllib

import yaml

from compose_stack import DOCKERFILE, K8S_DIR, REPO

DOCKER = REPO / "deploy" / "docker"


def _name(requirement: str) -> str:
    """The normalised project name of a requirement line (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)).lower()


def _pins(path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"{path.name}: {line!r} is not pinned with =="
            pins[_name(name)] = version.strip()
    return pins


def test_every_runtime_dependency_is_pinned_for_the_images():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = _pins(DOCKER / "requirements.in")
    missing = sorted({_name(d) for d in deps} - set(pinned))
    assert not missing, f"add to deploy/docker/requirements.in (and regenerate requirements.lock): {missing}"


def test_requirements_in_matches_the_lock():
    direct, lock = _pins(DOCKER / "requirements.in"), _pins(DOCKER / "requirements.lock")
    assert "torch" not in lock  # each image target installs its own torch build
    wrong = {n: (v, lock.get(n)) for n, v in direct.items() if n != "torch" and lock.get(n) != v}
    assert not wrong, f"requirements.in vs requirements.lock (regenerate the lock, command in its header): {wrong}"


def test_torch_and_ray_versions_agree_everywhere():
    direct = _pins(DOCKER / "requirements.in")
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^ARG TORCH_VERSION=(\S+)$", dockerfile, re.M).group(1) == direct["torch"]
    assert re.search(r"^TORCH\s*\?=\s*torch==(\S+)$", (REPO / "Makefile").read_text(), re.M).group(1) == direct["torch"]
    ray_pin = direct["ray"]  # from `ray[default]==X`
    cluster = yaml.safe_load((K8S_DIR / "raycluster.yaml").read_text())
    assert cluster["spec"]["rayVersion"] == ray_pin

"""docker-compose.yml is valid (Debian's `docker-compose config -q` and the compose-spec JSON schema,
vendored in deploy/schemas/) and has the shape deploy/README.md promises: Ray token auth on every Ray
process, a scalable GPU worker, the API's health check on /readyz, one store volume, and an
.env.example that lists every variable the file reads."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from compose_stack import (COMPOSE_FILE, ENV_EXAMPLE, REPO, SCHEMAS, compose_variables, load_compose,
                           read_env_file)

SECRETS = {"RAY_AUTH_TOKEN": "ab" * 32, "SALIENT_API_TOKENS": "tokA:read,tokB:read+submit"}
ENV = {**read_env_file(), **SECRETS}


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not installed, so docker-compose.yml cannot be validated: "
                    "`apt-get install docker-compose` (or `make system-deps` as root on Debian)")
    return exe


def _config(env: dict[str, str]) -> subprocess.CompletedProcess:
    """`docker-compose --env-file .env.example config -q` with `env` as the process environment
    (which compose lets override the env file, as a shell's exported variables do)."""
    clean = {k: v for k, v in os.environ.items() if k not in ENV}
    return subprocess.run([_docker_compose(), "--project-directory", str(REPO), "-f", str(COMPOSE_FILE),
                           "--env-file", str(ENV_EXAMPLE), "config", "-q"],
                          env={**clean, **env}, capture_output=True, text=True, timeout=60, cwd=REPO)


def test_docker_compose_config_accepts_the_file():
    out = _config(SECRETS)
    assert out.returncode == 0, f"docker-compose config rejected docker-compose.yml:\n{out.stderr}"


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(missing):
    out = _config({k: v for k, v in SECRETS.items() if k != missing})
    assert out.returncode != 0 and f"set {missing} in .env" in out.stderr, out.stderr


def test_compose_file_matches_the_compose_spec_schema():
    import jsonschema

    schema = json.loads((SCHEMAS / "compose-spec" / "compose-spec.json").read_text())
    jsonschema.validate(load_compose(ENV), schema)  # raises ValidationError naming the path
    with pytest.raises(jsonschema.ValidationError):  # the schema does reject what compose would
        broken = load_compose(ENV)
        broken["services"]["ray-worker"]["shm_sizes"] = "1g"
        jsonschema.validate(broken, schema)


def test_env_example_lists_exactly_the_variables_the_compose_file_reads():
    used, listed = compose_variables(), set(read_env_file())
    assert used == listed, f"used but not in .env.example: {sorted(used - listed)}; listed but unused: {sorted(listed - used)}"


def test_ray_processes_share_token_auth_and_find_the_head():
    services = load_compose(ENV)["services"]
    for name in ("ray-head", "ray-worker", "api"):
        env = services[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"] == SECRETS["RAY_AUTH_TOKEN"], name
    head_port = next(a.split("=")[1] for a in services["ray-head"]["command"] if a.startswith("--port="))
    assert services["api"]["environment"]["RAY_ADDRESS"] == f"ray-head:{head_port}"
    assert f"--address=ray-head:{head_port}" in services["ray-worker"]["command"]
    assert services["api"]["entrypoint"] == ["join-ray"]  # the driver's container joins as a Ray node


def test_gpu_worker_reserves_gpus_has_shm_and_can_be_scaled():
    worker = load_compose(ENV)["services"]["ray-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices and all(d["capabilities"] == ["gpu"] for d in devices)
    assert worker["shm_size"]
    # --scale ray-worker=N needs containers without a fixed name or host port
    assert "container_name" not in worker and "ports" not in worker


def test_api_health_check_reads_readyz_and_tokens_come_from_env():
    api = load_compose(ENV)["services"]["api"]
    assert any("/readyz" in part for part in api["healthcheck"]["test"])
    assert api["environment"]["SALIENT_API_TOKENS"] == SECRETS["SALIENT_API_TOKENS"]
    assert "${SALIENT_API_TOKENS" in COMPOSE_FILE.read_text()  # from .env, never written in the file


def test_one_store_volume_shared_by_api_and_trainer_at_the_same_path():
    doc = load_compose(ENV)
    mounts = {}
    for name in ("api", "trainer"):
        svc = doc["services"][name]
        (volume,) = [v for v in svc["volumes"] if v.split(":")[1] == "/data"]
        mounts[name] = (volume, svc["environment"]["SALIENT_STORE"])
    assert mounts["api"] == mounts["trainer"] == ("salient-store:/data", "/data/salient")
    assert "salient-store" in doc["volumes"]
    for name in ("ray-head", "ray-worker"):  # Ray nodes only compute; only drivers touch the store
        assert not any("salient-store" in v for v in doc["services"][name].get("volumes", []))

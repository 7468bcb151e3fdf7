"""Read the deploy files the way their runtimes do: docker-compose.yml (with .env interpolation),
deploy/docker/Dockerfile (each target's ENTRYPOINT + CMD), the Kubernetes manifests that
deploy/k8s/kustomization.yaml lists, and the `salient ...` command lines all of them run.

Shared by tests/deploy/ and tests/attribution_worker/test_two_node.py (which takes the Ray and store
environment of its processes from the compose file through `compose_environment`).
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
K8S_DIR = REPO / "deploy" / "k8s"
SCHEMAS = REPO / "deploy" / "schemas"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}: the forms compose supports
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
# wrappers that exec their arguments (deploy/docker/join-ray.sh)
EXEC_WRAPPERS = ("join-ray",)


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=value lines of a compose .env file (comments and blank lines skipped, no quoting rules)."""
    env = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path.name}:{n}: expected KEY=value, got {line!r}")
        env[key.strip()] = value
    return env


def compose_variables(text: str | None = None) -> set[str]:
    """Names of the variables docker-compose.yml interpolates."""
    text = COMPOSE_FILE.read_text() if text is None else text
    return {m.group("name") for m in _VAR.finditer(text)}


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation over a loaded YAML tree; a missing required variable raises ValueError."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        have = env.get(name)
        empty = have is None or (have == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if empty else have
        if op in (":?", "?"):
            if empty:
                raise ValueError(f"required variable {name} is not set: {arg}")
            return have
        return have or ""

    return _VAR.sub(one, value)


def load_compose(env: dict[str, str] | None = None) -> dict:
    """docker-compose.yml as loaded YAML (anchors and merge keys resolved); interpolated when env is given."""
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    return doc if env is None else interpolate(doc, env)


def compose_environment(service: str) -> dict[str, str]:
    """A compose service's `environment` mapping, not interpolated (values may hold ${VAR} references)."""
    env = load_compose()["services"][service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def is_reference(value: str) -> bool:
    """True when a compose value is (or holds) a ${VAR} reference rather than a literal."""
    return bool(_VAR.search(value))


def dockerfile_targets(path: Path = DOCKERFILE) -> dict[str, list[str]]:
    """{stage name: ENTRYPOINT + CMD argv} for every stage that sets either (JSON exec form only)."""
    stages: dict[str, dict] = {}
    current = None
    for line in path.read_text().splitlines():
        m = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?\s*$", line, re.IGNORECASE)
        if m:
            current = stages.setdefault(m.group(1) or f"stage{len(stages)}", {})
            continue
        m = re.match(r"(ENTRYPOINT|CMD)\s+(.*)$", line)
        if m and current is not None:
            current[m.group(1)] = json.loads(m.group(2))
    return {name: s.get("ENTRYPOINT", []) + s.get("CMD", []) for name, s in stages.items() if s}


def kustomize_resources() -> list[Path]:
    """The manifest files deploy/k8s/kustomization.yaml lists, in order."""
    kust = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    return [K8S_DIR / r for r in kust["resources"]]


def k8s_documents() -> list[tuple[str, dict]]:
    """(file name, document) for every YAML document of every listed manifest."""
    return [(p.name, doc) for p in kustomize_resources()
            for doc in yaml.safe_load_all(p.read_text()) if doc is not None]


def _k8s_argvs(node, where: str):
    """argv lists of every container (command + args) and RayJob entrypoint under a manifest node."""
    if isinstance(node, dict):
        if "image" in node and ("command" in node or "args" in node):
            yield where + "/" + node.get("name", "?"), list(node.get("command", [])) + list(node.get("args", []))
        if isinstance(node.get("entrypoint"), str):
            yield where + "/entrypoint", shlex.split(node["entrypoint"])
        for v in node.values():
            yield from _k8s_argvs(v, where)
    elif isinstance(node, list):
        for v in node:
            yield from _k8s_argvs(v, where)


def all_argvs(env: dict[str, str]) -> list[tuple[str, list[str]]]:
    """(where, argv) of every command the images, docker-compose.yml and the manifests run."""
    found = [(f"Dockerfile:{name}", argv) for name, argv in dockerfile_targets().items()]
    for name, svc in load_compose(env)["services"].items():
        entry = svc.get("entrypoint") or []
        command = svc.get("command") or []
        entry = shlex.split(entry) if isinstance(entry, str) else entry
        command = shlex.split(command) if isinstance(command, str) else command
        if entry or command:
            found.append((f"docker-compose.yml:{name}", list(entry) + list(command)))
    for fname, doc in k8s_documents():
        found.extend(_k8s_argvs(doc, f"deploy/k8s/{fname}:{doc['kind']}/{doc['metadata']['name']}"))
    return found


def salient_commands(env: dict[str, str]) -> list[tuple[str, list[str]]]:
    """(where, argv after `salient`) of every `salient ...` command, exec wrappers removed."""
    out = []
    for where, argv in all_argvs(env):
        while argv and argv[0] in EXEC_WRAPPERS:
            argv = argv[1:]
        if argv and argv[0] == "salient":
            out.append((where, argv[1:]))
    return out


def service_env(service: str, *, volume: Path, given: dict[str, str], skip: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment docker-compose.yml gives `service`, as a test on this machine runs it.

    A name in `given` takes that value (e.g. RAY_ADDRESS -> this test's head, RAY_AUTH_TOKEN -> a
    generated token); SALIENT_STORE keeps its compose path re-rooted under `volume` (compose mounts the
    store volume at /data: `<volume>/data/salient`); other literal values are kept as they are; names
    in `skip` are left out (settings the process under test does not read). Any other ${VAR} value is
    an error, so a variable added to the compose file must be decided here too.
    """
    env = {}
    for name, value in compose_environment(service).items():
        if name in given:
            env[name] = given[name]
        elif name == "SALIENT_STORE":
            env[name] = str(volume / Path(value).relative_to("/"))
        elif name in skip:
            continue
        elif not is_reference(value):
            env[name] = value
        else:
            raise AssertionError(f"docker-compose.yml gives {service} {name}={value}: give it a value in the test")
    missing = set(given) - set(env)
    if missing:
        raise AssertionError(f"docker-compose.yml does not give {service} {sorted(missing)}")
    return env

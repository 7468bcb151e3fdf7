"""Every Kubernetes manifest in deploy/k8s/ is valid against its schema: built-in kinds with
kubernetes-validate (strict: unknown fields are errors), the KubeRay kinds (RayCluster, RayJob)
against the openAPIV3Schema of KubeRay's published CRDs, vendored in deploy/schemas/kuberay/ and made
strict the same way. Also checks what deploy/README.md promises of them (Forbid, autoscaling bounds,
probes, one store claim, token auth)."""
from __future__ import annotations

import copy
import functools
import hashlib

import pytest
import yaml

from compose_stack import K8S_DIR, SCHEMAS, k8s_documents, kustomize_resources

K8S_VERSION = "1.33.0"   # the Kubernetes API version the manifests are written for (CronJob timeZone: >= 1.27)
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
DOCS = k8s_documents()


def _strict(schema):
    """The schema with additionalProperties: false on every object that names its properties
    (unless it preserves unknown fields), as `kubectl apply --validate=strict` treats unknown fields."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.lru_cache(maxsize=None)
def _crd_validator(kind: str):
    import jsonschema

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 0.9 and 1.4 MB
    crd = yaml.load((SCHEMAS / "kuberay" / CRD_FILES[kind]).read_text(), Loader=loader)
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_kustomization_lists_every_manifest_and_each_exists():
    listed = kustomize_resources()
    assert all(p.is_file() for p in listed), [str(p) for p in listed if not p.is_file()]
    on_disk = {p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert on_disk == set(listed), f"not in kustomization.yaml: {sorted(p.name for p in on_disk - set(listed))}"
    kinds = {doc["kind"] for _, doc in DOCS}
    assert {"RayCluster", "RayJob", "CronJob", "Deployment", "Service", "PersistentVolumeClaim", "Secret"} <= kinds


@pytest.mark.parametrize("fname,doc", DOCS, ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in DOCS])
def test_manifest_is_valid_against_its_schema(fname, doc):
    if doc["kind"] in CRD_FILES:
        errors = sorted(_crd_validator(doc["kind"]).iter_errors(doc), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(f"{fname}: {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
    else:
        import kubernetes_validate

        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises ValidationError naming the field


@pytest.mark.parametrize("kind,path,bad", [
    ("RayCluster", ["spec", "workerGroupSpecs", 0], ("maxReplica", 8)),        # a typo of maxReplicas
    ("RayCluster", ["spec", "workerGroupSpecs", 0], ("minReplicas", "zero")),  # wrong type
    ("RayJob", ["spec"], ("entryPoint", "salient demo")),                       # a typo of entrypoint
    ("RayJob", ["spec"], ("backoffLimit", "never")),                            # wrong type
])
def test_crd_validation_rejects_bad_fields(kind, path, bad):
    (doc,) = [copy.deepcopy(d) for _, d in DOCS if d["kind"] == kind]
    node = doc
    for key in path:
        node = node[key]
    node[bad[0]] = bad[1]
    assert list(_crd_validator(kind).iter_errors(doc)), f"{kind}: {bad} was accepted"


def test_builtin_validation_rejects_an_unknown_field():
    import kubernetes_validate

    (doc,) = [copy.deepcopy(d) for _, d in DOCS if d["kind"] == "CronJob"]
    doc["spec"]["concurrencyPolicyy"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_vendored_schemas_are_the_published_files():
    """deploy/schemas/README.md names each file's git blob id at its source commit; recompute it."""
    table = [line.split("|") for line in (SCHEMAS / "README.md").read_text().splitlines()
             if line.startswith("| `") and "`" in line]
    assert len(table) == 3
    for row in table:
        fname, blob = row[1].strip().strip("`"), row[5].strip().strip("`")
        assert _git_blob_id((SCHEMAS / fname).read_bytes()) == blob, f"{fname} differs from its source"


def _one(kind):
    (doc,) = [d for _, d in DOCS if d["kind"] == kind]
    return doc


def test_manifests_wire_the_stack_together():
    cluster, job, cron = _one("RayCluster"), _one("RayJob"), _one("CronJob")
    (api,) = [d for _, d in DOCS if d["kind"] == "Deployment" and d["metadata"]["name"] == "salient-api"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (gpu,) = cluster["spec"]["workerGroupSpecs"]
    assert cluster["spec"]["enableInTreeAutoscaling"] is True and 0 <= gpu["minReplicas"] <= gpu["maxReplicas"]
    worker = gpu["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1" == gpu["rayStartParams"]["num-gpus"]
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    # token auth: the cluster's secret is the one the API's driver reads
    assert cluster["spec"]["authOptions"]["mode"] == "token"
    container = api["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": cluster["spec"]["authOptions"]["secretName"], "key": "auth_token"}
    assert env["RAY_ADDRESS"]["value"] == f"{cluster['metadata']['name']}-head-svc:6379"  # KubeRay's head Service
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["spec"]["strategy"]["type"] == "Recreate" and api["spec"]["replicas"] == 1
    secrets = {d["metadata"]["name"]: d for _, d in DOCS if d["kind"] == "Secret"}
    assert env["SALIENT_API_TOKENS"]["valueFrom"]["secretKeyRef"]["name"] in secrets
    # one store claim, mounted at /data by every pod that uses it (store root /data/salient)
    claim = _one("PersistentVolumeClaim")["metadata"]["name"]
    pods = [api["spec"]["template"]["spec"], cron["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            cluster["spec"]["headGroupSpec"]["template"]["spec"]]
    for pod in pods:
        (vol,) = [v for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == claim]
        mounts = [m for c in pod["containers"] for m in c.get("volumeMounts", []) if m["name"] == vol["name"]]
        assert [m["mountPath"] for m in mounts] == ["/data"]

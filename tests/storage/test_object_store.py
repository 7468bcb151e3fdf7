"""The store on object storage (docs/storage.md "Object storage"), against a real S3-compatible server.

moto's server mode runs on 127.0.0.1 inside the test (ThreadedMotoServer on a free port, stopped at
teardown); salient talks to it through pyarrow's S3 filesystem exactly as to AWS S3 or MinIO
(SALIENT_S3_ENDPOINT_URL). One store `s3://salient-test/team/store` is filled once per module:
dataset ingest, then an attribution job on a real local Ray cluster with a tiny T5 teacher writes
its shards there. The tests then read it through the SQL sandbox (which still refuses every path
outside the bucket/prefix), rebuild the catalog from the objects alone, and train a student from
the shards. The catalog file stays on local disk (SALIENT_CATALOG_PATH).
"""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("moto")
ray = pytest.importorskip("ray")

BUCKET = "salient-test"
ROOT = f"s3://{BUCKET}/team/store"
WORDS = "the a cat dog sat ran on under mat box red blue big small near far tree house".split()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with bucket salient-test; the env salient and its workers read."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    # port 0: the server binds a free port itself (a port picked here and bound later can be taken between;
    # moto's start() then waits forever for a server that failed to bind)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    endpoint = f"http://127.0.0.1:{port}"
    mp = pytest.MonkeyPatch()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret",
                       "AWS_EC2_METADATA_DISABLED": "true", "SALIENT_S3_ENDPOINT_URL": endpoint,
                       "SALIENT_S3_REGION": "us-east-1",
                       "SALIENT_CATALOG_PATH": str(tmp_path_factory.mktemp("local") / "catalog.duckdb")}.items():
        mp.setenv(key, value)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.create_bucket(Bucket="other-bucket")
    try:
        yield client
    finally:
        mp.undo()
        server.stop()


def _rows(n: int, split: str) -> list[dict]:
    import random

    rng = random.Random(split)
    return [{"example_id": f"{split}-{i:03d}", "input": " ".join(rng.choice(WORDS) for _ in range(4 + i % 5)),
             "target": rng.choice(["cat", "dog"]), "choices": None} for i in range(n)]


def _ingest(catalog, rows: list[dict], split: str):
    from storage.ingest import IngestOptions, ingest

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "toy.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return ingest(catalog, "toy", path, IngestOptions(format="jsonl", split=split))


@pytest.fixture(scope="module")
def filled(s3, tmp_path_factory):
    """The s3:// store after ingest (train 40 rows, test 20) and one Ray attribution job (shards of 15 rows)."""
    from attribution_worker.jobs import JobSpec, run_job
    from attribution_worker.tiny import build_tiny_teacher
    from storage import Catalog, Store

    catalog = Catalog.open(Store.open(ROOT))
    train, test = _rows(40, "train"), _rows(20, "test")
    assert [p.status for p in _ingest(catalog, train, "train") + _ingest(catalog, test, "test")] == ["added", "added"]
    teacher = build_tiny_teacher(tmp_path_factory.mktemp("teacher") / "t5", kind="seq2seq",
                                 texts=[r["input"] for r in train + test] + ["cat dog"], seed=1)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_job(catalog, JobSpec(dataset="toy", teacher=str(teacher), max_new_tokens=3, shard_size=15,
                                           actors=1, num_cpus_per_actor=1), job_id="s3-job")
    finally:
        ray.shutdown()
    assert summary["status"] == "succeeded" and summary["shards"] == 4
    return catalog


def _keys(client, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def test_an_object_appears_whole_or_not_at_all(s3):
    """No rename on S3: the object is uploaded once, when the writer's block ends without an error."""
    from storage.objects import ObjectPath
    from storage.parquet_io import atomic_write, write_json_atomic

    target = ObjectPath.parse(f"{ROOT}/scratch/record.json")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_write(target, "w") as fh:
            fh.write('{"half": ')
            raise RuntimeError("killed mid-write")
    assert _keys(s3, "team/store/scratch/") == []
    write_json_atomic({"whole": True}, target)
    assert json.loads(target.read_text()) == {"whole": True} and _keys(s3, "team/store/scratch/") == [
        "team/store/scratch/record.json"]
    target.unlink()


def test_ingest_and_ray_job_write_objects_and_the_catalog_stays_local(s3, filled):
    keys = _keys(s3, "team/store/")
    parts = [k for k in keys if k.startswith("team/store/datasets/toy/")]
    shards = [k for k in keys if k.startswith("team/store/rationales/dataset=toy/job=s3-job/")]
    assert len(parts) == 2 and all(k.endswith("/part-00000.parquet") for k in parts)
    assert [k.rsplit("/", 1)[1] for k in shards] == ["job.json"] + [f"shard-{i:05d}.parquet" for i in range(4)]
    assert not any("catalog.duckdb" in k or k.endswith(".tmp") for k in keys)  # no temp objects, no catalog
    assert filled.store.catalog_path.is_file() and not str(filled.store.catalog_path).startswith("s3:")
    assert sorted(filled.dataset_parts("toy")) == [k.removeprefix("team/store/") for k in parts]


def test_sql_reads_the_objects_through_the_sandbox(filled):
    from storage.sql import run_sql

    result = run_sql(filled, "SELECT split, count(*) AS n, count(DISTINCT shard_index) AS shards FROM rationales "
                             "GROUP BY split ORDER BY split")
    assert result.rows == [("test", 20, 2), ("train", 40, 3)]
    assert run_sql(filled, "SELECT count(*) FROM examples").rows == [(60,)]
    assert run_sql(filled, "SELECT count(*) FROM rationale_tokens").rows[0][0] > 0


@pytest.mark.parametrize("path", [
    "s3://other-bucket/team/store/datasets/toy/x.parquet",        # another bucket
    f"s3://{BUCKET}/team/other/x.parquet",                          # the bucket, outside the prefix
    f"s3://{BUCKET}/team/store-2/x.parquet",                        # a sibling prefix sharing the name's start
    f"s3://{BUCKET}/team/store/../other/x.parquet",                 # climbing out
    "/etc/passwd",                                                  # the local disk
])
def test_sandbox_refuses_every_path_outside_the_bucket_prefix(filled, path):
    from storage.sql import SQLRefused, run_sql

    with pytest.raises(SQLRefused, match=r"(?s)Cannot access file.*The sandbox reads only the store \(s3://salient-test/team/store\)"):
        run_sql(filled, f"SELECT * FROM read_parquet('{path}')")


def test_a_path_inside_the_prefix_is_refused_with_the_reason(filled):
    """No httpfs in this DuckDB: SQL cannot name objects at all; the error says to query the tables."""
    from storage.sql import SQLRefused, run_sql

    key = filled.dataset_parts("toy")[0]
    with pytest.raises(SQLRefused, match="no httpfs extension.*query those"):
        run_sql(filled, f"SELECT count(*) FROM read_parquet('{ROOT}/{key}')")


def test_trainer_reads_the_shards_and_publishes_its_run(s3, filled):
    from student_trainer import TrainConfig
    from student_trainer.run import run_training

    cfg = TrainConfig(dataset="toy", student="tiny", steps=4, batch_size=8, eval_every=2, checkpoint_every=2,
                      eval_batch_size=16, max_target_tokens=4, progress=False, seeds=[0], compare_baseline=False)
    out = run_training(filled, cfg, run_id="s3-run")
    assert out["metrics"]["counts"]["rows_read"] == 60
    run_keys = _keys(s3, "team/store/runs/s3-run/")
    for name in ("config.json", "metrics.json", "run.json"):
        assert f"team/store/runs/s3-run/{name}" in run_keys
    assert any(k.startswith("team/store/runs/s3-run/model/") for k in run_keys)
    assert not any("/work/" in k for k in run_keys)  # resume checkpoints stay on the writer's disk
    record = json.loads(s3.get_object(Bucket=BUCKET, Key="team/store/runs/s3-run/run.json")["Body"].read())
    assert record["status"] == "succeeded" and record["path"] == "runs/s3-run"


def test_a_damaged_object_fails_only_its_queries_and_is_quarantined(s3, filled):
    """As on disk (docs/storage.md "Recovery runbook"): only queries reading the damaged object fail;
    `catalog check` names it; `rebuild --quarantine` moves it to quarantine/ and marks its job failed."""
    from storage import rationale_table, write_shard
    from storage.recovery import check_store, rebuild_catalog
    from storage.sql import run_sql

    rows = [dict(example_id=f"x{i}", input_text="a b", target_text="cat", teacher_model="toy", method="saliency",
                 teacher_output="cat", teacher_correct=True, tokens=["a", "b"], rationale=["a"], rationale_text="a",
                 error=None) for i in range(5)]
    filled.create_job("bad-job", dataset="toy", split=None, spec={"test": True}, total_rows=5, shards_total=1)
    info = write_shard(filled, rationale_table(rows, dataset="toy", split="train", job_id="bad-job", shard_index=0),
                       dataset="toy", job_id="bad-job", index=0)
    s3.put_object(Bucket=BUCKET, Key=f"team/store/{info['path']}", Body=b"PAR1 not parquet")  # damaged in place
    assert run_sql(filled, "SELECT count(*) FROM rationales WHERE job_id = 's3-job'").rows == [(60,)]
    with pytest.raises(Exception, match=r"shard s3://salient-test/team/store/rationales/dataset=toy/job=bad-job/"
                                        r"shard-00000.parquet is unreadable.*salient catalog check"):
        run_sql(filled, "SELECT count(*) FROM rationales WHERE job_id = 'bad-job'")

    problems = check_store(filled)
    assert [(p.kind, p.path) for p in problems] == [("unreadable", info["path"])]
    report = rebuild_catalog(filled, quarantine=True)
    assert report.quarantined == [(info["path"], f"quarantine/{info['path']}")]
    assert report.lost_shards == {"bad-job": [0]}
    assert _keys(s3, "team/store/quarantine/") == [f"team/store/quarantine/{info['path']}"]
    assert not _keys(s3, f"team/store/{info['path']}")
    assert filled.get_job("bad-job")["status"] == "failed" and filled.get_job("s3-job")["status"] == "succeeded"
    assert check_store(filled) == [] and run_sql(filled, "SELECT count(*) FROM rationales").rows == [(60,)]


def test_catalog_rebuild_recreates_the_index_from_the_objects(filled):
    """Delete the local catalog file: `salient catalog rebuild` lists the bucket prefix and registers everything."""
    from api.cli import main
    from storage import Catalog, Store
    from storage.sql import run_sql

    filled.store.catalog_path.unlink()
    assert main(["--store", ROOT, "catalog", "rebuild"]) == 0
    fresh = Catalog.open(Store.open(ROOT))
    after = {t: fresh.query(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in ("datasets", "shards", "runs")}
    assert after == {"datasets": 2, "shards": 4, "runs": 1}
    assert fresh.get_job("s3-job")["status"] == "succeeded"
    assert fresh.get_job("bad-job")["status"] == "failed"  # its job.json survives, its one shard does not
    assert run_sql(fresh, "SELECT count(*) FROM rationales").rows == [(60,)]
    assert fresh.query("SELECT count(*) AS n FROM rationales WHERE split = 'test'") == [{"n": 20}]  # trusted reads too


def test_errors_name_the_bucket_and_never_show_the_secret(s3, capsys):
    from api.cli import main
    from storage import Store

    with pytest.raises(FileNotFoundError, match="bucket 'no-such-bucket' does not exist; create it"):
        Store.open("s3://no-such-bucket/x")
    assert main(["--store", "s3://no-such-bucket/x", "catalog", "show"]) != 0
    assert main(["--store", ROOT, "catalog", "show"]) == 0
    assert main(["--store", ROOT, "datasets", "show", "toy", "--rows", "1"]) == 0  # reads the parts' footers and a row
    out = capsys.readouterr()
    assert "example_id string" in out.out and "train-000" in out.out
    assert "no-such-bucket" in out.err and "testing-secret" not in out.out + out.err


def test_catalog_path_setting_moves_the_catalog_of_a_local_store_too(tmp_path, monkeypatch):
    from storage import Catalog, Store

    monkeypatch.setenv("SALIENT_CATALOG_PATH", str(tmp_path / "elsewhere" / "index.duckdb"))
    catalog = Catalog.open(Store.open(tmp_path / "store"))
    catalog.create_job("j1", dataset="toy", split=None, spec={}, total_rows=0, shards_total=0)
    assert (tmp_path / "elsewhere" / "index.duckdb").is_file() and not (tmp_path / "store" / "catalog.duckdb").exists()
    (tmp_path / "elsewhere" / "index.duckdb").unlink()
    assert catalog.rebuild()["jobs"] == 1 and catalog.get_job("j1")["status"] == "succeeded"

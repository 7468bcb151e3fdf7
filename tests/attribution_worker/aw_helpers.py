"""Helpers of the attribution tests (importable: pytest puts this directory on sys.path)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path


def ingest_rows(catalog, rows: list[dict], name: str = "toy", split: str = "test") -> list:
    """Ingest `rows` through the real `salient datasets add` path (storage.ingest, JSONL): the parts
    a job reads are the ones ingest writes (format jsonl, content-hash versions). Returns PartResults."""
    from storage.ingest import IngestOptions, ingest

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.jsonl"
        path.write_text("".join(json.dumps({k: r.get(k) for k in ("example_id", "input", "target", "choices")}) + "\n"
                                for r in rows))
        return ingest(catalog, name, path, IngestOptions(format="jsonl", split=split))

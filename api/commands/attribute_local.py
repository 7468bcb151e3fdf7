"""`salient attribute-local`: the same job spec as `salient attribute`, run in this process (no Ray).

    salient attribute-local --dataset cqa --teacher ./tiny-t5 --method saliency --k 5
    salient attribute-local --resume job-cqa-1a2b3c4d5e6f          # committed shards are skipped
    salient sql "SELECT rationale_text, comprehensiveness FROM rationales LIMIT 5"

The flags are generated from JobSpec / AttributionConfig (attribution_worker/spec.py), minus the
Ray-only ones; the job id, dataset-version pinning and resume rules are those of `salient attribute`.
"""
from __future__ import annotations

import json

from .common import open_catalog


def register(sub) -> None:
    from attribution_worker.spec import add_spec_arguments

    p = sub.add_parser("attribute-local", help="attribute a dataset in this process and commit rationale shards")
    p.add_argument("--resume", metavar="JOB_ID", help="resume this job with its stored spec")
    p.add_argument("--job-id", default=None,
                   help="job id (default: derived from the dataset and settings); re-running the same id resumes it")
    add_spec_arguments(p, ray=False)
    p.set_defaults(func=cmd_attribute_local)


def cmd_attribute_local(args) -> int:
    from attribution_worker.local import run_local

    from .attribute import spec_from_args

    with open_catalog(args) as cat:
        spec, job_id = spec_from_args(args, cat, ray=False)
        summary = run_local(
            cat, spec, job_id=job_id,
            progress=lambda s: print(f"shard {s['shard'] + 1}/{s['shards']}: {s['rows']} rows, {s['error_rows']} errors -> {s['path']}"),
        )
    print(json.dumps(summary))
    return 0

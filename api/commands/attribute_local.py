"""`salient attribute-local`: attribute a whole dataset in this process (no Ray), commit shards.

    salient attribute-local --dataset cqa --teacher ./tiny-t5 --method saliency --k 5
    salient sql "SELECT rationale_text, comprehensiveness FROM rationales LIMIT 5"
"""
from __future__ import annotations

import json

from .common import open_catalog


def register(sub) -> None:
    from attribution_worker.constants import BASELINES, METHODS

    p = sub.add_parser("attribute-local", help="attribute a dataset in this process and commit rationale shards")
    p.add_argument("--dataset", required=True, help="an ingested dataset name (see `salient catalog show`)")
    p.add_argument("--teacher", required=True, help="Hugging Face id or local path of the teacher model")
    p.add_argument("--method", default="saliency", choices=METHODS, help="attribution method (default saliency)")
    p.add_argument("--k", type=int, default=5, help="rationale size in words (default 5)")
    p.add_argument("--target", default="teacher", choices=("teacher", "gold"),
                   help="explain the teacher's answer or the gold target (default teacher)")
    p.add_argument("--split", default=None, help="one split only (default: every split)")
    p.add_argument("--template", default=None,
                   help="prompt template: cqa | svamp | nli | generic or a literal with {input} (default: from the dataset format)")
    p.add_argument("--token-budget", type=int, default=4096, help="max padded tokens per batch (default 4096)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="teacher answer length limit (default 32)")
    p.add_argument("--n-steps", type=int, default=16, help="integrated gradients steps (default 16)")
    p.add_argument("--baseline", default="zero", choices=BASELINES, help="integrated gradients baseline (default zero)")
    p.add_argument("--max-input-tokens", type=int, default=None, help="longest input in tokens (default: the teacher's)")
    p.add_argument("--no-faithfulness", action="store_true", help="skip comprehensiveness / sufficiency / gold overlap")
    p.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    p.add_argument("--shard-size", type=int, default=1000, help="rows per committed shard (default 1000)")
    p.add_argument("--limit", type=int, default=None, help="attribute only the first N rows")
    p.add_argument("--job-id", default=None, help="job id (default: derived from dataset, split and settings; re-running resumes)")
    p.set_defaults(func=cmd_attribute_local)


def cmd_attribute_local(args) -> int:
    from attribution_worker.local import attribute_dataset, config_for_dataset

    with open_catalog(args) as cat:
        config = config_for_dataset(
            cat, args.dataset, teacher=args.teacher, method=args.method, k=args.k, target=args.target,
            template=args.template, token_budget=args.token_budget, max_new_tokens=args.max_new_tokens,
            n_steps=args.n_steps, baseline=args.baseline, max_input_tokens=args.max_input_tokens,
            faithfulness=not args.no_faithfulness, device=args.device,
        )
        summary = attribute_dataset(
            cat, args.dataset, config, split=args.split, shard_size=args.shard_size, limit=args.limit, job_id=args.job_id,
            progress=lambda s: print(f"shard {s['shard'] + 1}/{s['shards']}: {s['rows']} rows, {s['error_rows']} errors -> {s['path']}"),
        )
    print(json.dumps(summary))
    return 0

"""Attribution throughput: examples/s per method and the ratio to forward-only scoring of the same batch.

    .venv/bin/python benchmarks/attribution.py                      # tiny + T5-small shape, CPU fp32
    .venv/bin/python benchmarks/attribution.py --models t5-small --batch 32 --repeats 5
    .venv/bin/python benchmarks/attribution.py --models flan-t5-xl --device cuda --dtype bf16   # needs a GPU
    .venv/bin/python benchmarks/attribution.py --models tiny --jobs  # + Ray job throughput vs. bare engine

Models are built from configs with random weights (timing does not depend on the weights): `tiny`
(T5, d_model 32, 2 layers), `tiny-gpt2` (GPT-2, d_model 32, 2 layers), `gpt2-small` (GPT-2, 768, 12 layers), `t5-small` (d_model 512, 6+6 layers, 8 heads, d_ff 2048, vocab 32128),
`flan-t5-xl` (d_model 2048, 24+24 layers, 32 heads, d_ff 5120 gated-gelu, vocab 32128). Inputs are
CQA-shaped (about 40 words plus the cqa template), answers two tokens. Per method we time the
method's own work on one padded batch (methods.gradient_scores / occlusion_scores) and, in the same
run, `teacher.logp` under no_grad on the same batch and answers ("forward"); the ratio is
the median over --repeats of method_time / forward_time, each pair timed back to back. `engine` is AttributionEngine.attribute end to
end (greedy answers, saliency, faithfulness) on the same rows. In the same run, for comparison:
Captum's FeatureAblation (batched, perturbations_per_eval=1: one forward of the batch per word
group, the same mask token and word groups) against the engine's occlusion, and Inseq
(`inseq.load_model` on the same model and tokenizer; generated_texts = the same answers) for each
gradient method; `engine faster by` = their seconds / the engine's. Prints a Markdown table;
--json writes the rows too.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from attribution_worker.batching import pad  # noqa: E402
from attribution_worker.engine import AttributionConfig, AttributionEngine  # noqa: E402
from attribution_worker.methods import METHODS, gradient_scores, occlusion_scores  # noqa: E402
from attribution_worker.tiny import build_tiny_teacher  # noqa: E402

SHAPES = {
    "tiny": dict(d_model=32, layers=2, heads=2),
    "tiny-gpt2": dict(kind="causal", d_model=32, layers=2, heads=2),
    "gpt2-small": dict(kind="causal", d_model=768, layers=12, heads=12, vocab_size=50257),
    "t5-small": dict(d_model=512, layers=6, heads=8, d_ff=2048, vocab_size=32128),
    "flan-t5-xl": dict(d_model=2048, layers=24, heads=32, d_ff=5120, vocab_size=32128, d_kv=64,
                       feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}
WORDS = [f"w{i}" for i in range(2000)]


def make_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 20)))
        choices = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) for _ in range(5)]
        text = q + "\nAnswer Choices:\n" + "\n".join(f"({c}) {t}" for c, t in zip("abcde", choices))
        rows.append({"example_id": str(i), "input": text, "target": choices[0], "choices": choices, "split": "test"})
    return rows


def _once(fn, sync) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def _paired(fn, forward, repeats: int, sync) -> tuple[float, float]:
    """(median seconds of fn, median of fn/forward ratios), timing fn and forward back to back each
    repeat, so load from other processes on a shared machine hits both sides of each ratio."""
    fn(), forward()  # warm-up
    secs, ratios = [], []
    for _ in range(repeats):
        f = _once(forward, sync)
        m = _once(fn, sync)
        secs.append(m)
        ratios.append(m / f)
    return statistics.median(secs), statistics.median(ratios)


def _row(row: dict) -> dict:
    speedup = f"{row['engine_speedup']:.2f}" if row.get("engine_speedup") else ""
    print(f"| {row['model']} | {row['method']} | {row['examples_per_s']:.1f} | {row['ratio_to_forward']:.2f} | {speedup} |",
          flush=True)
    return row


def _inseq_rows(name, args, t, prepared, rows, forward, sync, ours) -> list[dict]:
    """Inseq (inseq.load_model on the same model instance and tokenizer) on the same inputs, the same
    answers (generated_texts = the rows' targets) and the same method; engine_speedup = inseq s / engine s."""
    try:
        import inseq
    except ImportError:
        print(f"| {name} | inseq | not installed (pip install -e .[bench]) | |", flush=True)
        return []
    out = []
    texts, targets = [p.input_text for p in prepared], [r["target"] for r in rows]
    if t.kind == "causal":  # Inseq's decoder-only targets are the whole text: prompt + answer
        targets = [x + ("" if x[-1:].isspace() else " ") + y for x, y in zip(texts, targets)]
    for method in [m for m in args.methods if m in ("saliency", "input_x_gradient", "integrated_gradients")]:
        model = inseq.load_model(t.model, method, tokenizer=t.tokenizer)
        kw = {"n_steps": args.n_steps} if method == "integrated_gradients" else {}
        fn = lambda m=model, kw=kw: m.attribute(input_texts=texts, generated_texts=targets,  # noqa: E731
                                                batch_size=len(texts), show_progress=False, **kw)
        sec, ratio = _paired(fn, forward, max(1, args.repeats // 2), sync)
        out.append(_row({"model": name, "method": f"inseq {method}", "examples_per_s": args.batch / sec,
                         "ratio_to_forward": ratio, "engine_speedup": sec / ours[method]}))
    return out


def bench_model(name: str, args, root: Path) -> list[dict]:
    shape = dict(SHAPES[name])
    path = build_tiny_teacher(root / name, texts=[" ".join(WORDS + list("()abcde"))], seed=0, kind=shape.pop("kind", "seq2seq"),
                              d_model=shape.pop("d_model"), layers=shape.pop("layers"), heads=shape.pop("heads"), **shape)
    engine = AttributionEngine(AttributionConfig(teacher=str(path), template="cqa", device=args.device, dtype=args.dtype,
                                                 n_steps=args.n_steps, token_budget=10**9, max_new_tokens=4))
    t = engine.teacher
    sync = torch.cuda.synchronize if t.device.type == "cuda" else (lambda: None)
    rows = make_rows(args.batch)
    prepared = [engine._prepare(i, r) for i, r in enumerate(rows)]
    ids, mask = pad([p.ids for p in prepared], t.pad_id, t.padding_side, t.device)
    answers = [t.answer_ids(r["target"], p.input_text) for r, p in zip(rows, prepared)]
    ans_ids, ans_mask = t.answer_tensors(answers)
    unit = torch.zeros_like(mask, dtype=torch.bool)
    for r, p in enumerate(prepared):
        unit[r, : len(p.ids)] = torch.tensor(p.units.unit_mask())
    units = [p.units for p in prepared]

    def forward():
        with torch.no_grad():
            t.logp(t.embed(ids), mask, ans_ids, ans_mask)

    fwd, _ = _paired(forward, forward, args.repeats, sync)
    out = [_row({"model": name, "method": "forward (no grad)", "examples_per_s": args.batch / fwd, "ratio_to_forward": 1.0})]
    full = [0.0] * len(rows)
    ours: dict[str, float] = {}
    for method in args.methods:
        if method == "occlusion":
            fn = lambda: occlusion_scores(t, [p.ids for p in prepared], units, answers, full, token_budget=args.batch * ids.shape[1])  # noqa: E731
        else:
            fn = lambda m=method: gradient_scores(t, m, ids, mask, ans_ids, ans_mask, unit, n_steps=args.n_steps)  # noqa: E731
        sec, ratio = _paired(fn, forward, args.repeats if method != "occlusion" else max(1, args.repeats // 2), sync)
        ours[method] = sec
        label = f"{method} (n_steps={args.n_steps})" if method == "integrated_gradients" else method
        out.append(_row({"model": name, "method": label, "examples_per_s": args.batch / sec, "ratio_to_forward": ratio}))
    if "occlusion" in args.methods:  # Captum's batched FeatureAblation, same words, same mask token, same budget
        from captum.attr import FeatureAblation

        n_groups = max(len(u.words) for u in units)
        groups = torch.full_like(ids, n_groups)  # template / special / pad tokens: one extra group
        for r, p in enumerate(prepared):
            for tok, u in enumerate(p.units.token_unit):
                if u >= 0:
                    groups[r, tok] = u
        ablation = FeatureAblation(lambda e: t.logp(e, mask, ans_ids, ans_mask))
        base = t.embed(torch.full_like(ids, t.mask_id))

        def captum_occlusion():
            with torch.no_grad():
                ablation.attribute(t.embed(ids), baselines=base, feature_mask=groups.unsqueeze(-1), perturbations_per_eval=1)

        sec, ratio = _paired(captum_occlusion, forward, max(1, args.repeats // 2), sync)
        out.append(_row({"model": name, "method": "captum FeatureAblation (batched)", "examples_per_s": args.batch / sec,
                         "ratio_to_forward": ratio, "engine_speedup": sec / ours["occlusion"]}))
    if args.inseq:
        out += _inseq_rows(name, args, t, prepared, rows, forward, sync, ours)
    if args.engine:
        sec, ratio = _paired(lambda: engine.attribute(rows), forward, 1, sync)
        out.append(_row({"model": name, "method": "engine saliency end to end", "examples_per_s": args.batch / sec,
                         "ratio_to_forward": ratio}))
    for row in out:
        row.update(batch=args.batch, tokens=int(ids.shape[1]), device=str(t.device), dtype=t.dtype, threads=torch.get_num_threads())
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["tiny", "t5-small"], choices=list(SHAPES))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--batch", type=int, default=32, help="examples per batch (default 32)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported (default 5)")
    p.add_argument("--n-steps", type=int, default=16, help="integrated gradients steps (default 16)")
    p.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-engine", dest="engine", action="store_false", help="skip the end-to-end engine row")
    p.add_argument("--no-inseq", dest="inseq", action="store_false",
                   help="skip the Inseq rows (same model, inputs, answers and method; the `bench` extra installs it)")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    p.add_argument("--jobs", action="store_true",
                   help="also time end-to-end Ray jobs (shards + catalog) against the bare engine (benchmarks/jobs.py)")
    p.add_argument("--job-rows", type=int, default=2000, help="rows per job run with --jobs (default 2000)")
    p.add_argument("--job-shard-size", type=int, default=1000, help="shard size with --jobs (default 1000)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    print("| model | method | examples/s | x forward | engine faster by |\n| --- | --- | ---: | ---: | ---: |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows += bench_model(name, args, Path(tmp))
    r0 = rows[0]
    print(f"\nbatch {r0['batch']}, device {r0['device']}, dtype {r0['dtype']}, torch threads {r0['threads']}")
    if args.jobs:
        import jobs as job_bench  # benchmarks/jobs.py

        job_rows = job_bench.run(model=args.models[0], n_rows=args.job_rows, shard_size=args.job_shard_size,
                                 threads=args.threads or torch.get_num_threads())
        cols = ["model", "mode", "rows", "shard_size", "seconds", "rows_per_s", "cpu_s", "overhead_pct", "note"]
        print("\nend-to-end jobs (Ray + shards + catalog) vs. the bare engine, same rows, interleaved:")
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
        for r in job_rows:
            print("| " + " | ".join("" if r[c] is None else str(r[c]) for c in cols) + " |")
        rows += job_rows
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

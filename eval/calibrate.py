"""`creative4u calibrate`: fit the selector's confidence on the validation split, store it with
the model.

The served decisions of `--max-pairs` validation pairs (both orders, through the same
`AsyncSelector` as everything else) give one temperature (`creative4u.calibration`), written as
`calibration.json` into the model (or adapter) folder; every later `Selector` on that model
applies it, and `creative4u eval` reports the calibration error before and after on test.
"""

from __future__ import annotations

import argparse
import json
import time


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder (or an adapter folder)")
    parser.add_argument("--adapter", default=None, help="LoRA adapter on --model")
    parser.add_argument("--dataset", required=True, help="CreativePair dataset folder")
    parser.add_argument("--split", default="validation", help="default: validation")
    parser.add_argument(
        "--max-pairs", type=int, default=200, help="pairs the fit uses (default: 200)"
    )
    parser.add_argument("--engine", choices=["vllm", "transformers"], default="vllm")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from creative4u import calibration
    from creative4u.engines import make_engine
    from eval.run import EvalConfig, fingerprint, load_split, pair_metas, resumable_records

    folder = calibration.model_folder(args.model, args.adapter)
    if not folder.is_dir():
        raise ValueError(f"calibration is stored next to the weights: {folder} is not a folder")
    split = load_split(args.dataset, args.split, args.max_pairs)
    cfg = EvalConfig(
        model=args.model,
        adapter=args.adapter,
        dataset=args.dataset,
        out=str(folder),
        split=args.split,
        engine=args.engine,
        max_new_tokens=args.max_new_tokens,
    )
    t0 = time.time()
    records = resumable_records(
        folder / "calibration_answers.jsonl",
        fingerprint(cfg, args.model, args.adapter, args.max_new_tokens),
        split,
        pair_metas(split),
        lambda: make_engine(args.engine, args.model, args.adapter),
        args.max_new_tokens,
        desc="validation pairs",
    )
    usable = [r for r in records if r["p_a"] is not None and r["decided_by"] != "default"]
    if not usable:
        raise ValueError("no validation decision carried an answer probability: nothing to fit")
    cal = calibration.fit(
        [r["p_a"] for r in usable],
        [r["label"] == "A" for r in usable],
        dataset=args.dataset,
        split=args.split,
        pairs=len(records),
        seconds=round(time.time() - t0, 1),
    )
    path = cal.save(folder)
    print(json.dumps({"temperature": cal.temperature, **cal.fitted_on}))
    print(f"calibration: temperature {cal.temperature:.3f} on {len(usable)} pairs -> {path}")
    return 0

"""Evaluate a selector on a CreativePair split through the one selection path users get.

Every pair goes through `AsyncSelector` on the serving engine (vLLM) by default: both orders,
combined into one decision, with the calibration stored next to the model. The headline
accuracy, confidence and calibration error are those of that decision; the per-order figures
(first-slot rate, order-swap agreement, faithfulness) stay as diagnostics.

Pairs are judged in chunks and appended to `OUT/answers.jsonl` as they come (the `base`
baseline's to `OUT/base_answers.jsonl`), under a fingerprint of what produced them: an eval
killed half-way and rerun with the same arguments judges only the pairs it lacks.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from creative4u import engines
from creative4u.metrics import (
    faithfulness,
    grouped_accuracy,
    per_order_records,
    selection_summary,
    wilson_interval,
)

logger = logging.getLogger("creative4u.eval")


@dataclass
class EvalConfig:
    model: str
    dataset: str
    out: str
    adapter: str | None = None
    split: str = "test"
    engine: str = "vllm"  # vllm | transformers
    max_pairs: int | None = None
    max_new_tokens: int = 256
    base_model: str | None = None  # "the base model before training" baseline
    m2fn: str | None = None  # M2FN checkpoint for its pairwise-preference baseline
    baselines: list[str] = field(
        default_factory=lambda: ["chance", "oracle", "features", "m2fn", "base"]
    )
    base_max_new_tokens: int = 64
    """The base model never writes the protocol; 64 tokens then the answer probe read its pick
    at a quarter of the cost of a full answer."""
    chunk: int = 128  # pairs judged (and saved) at a time: 256 generations, two vLLM CPU batches
    progress: bool = True


def pair_metas(split: Any) -> list[dict[str, Any]]:
    """What each pair's record needs besides the answer (labels and truth in A-first order)."""
    metas = []
    for i, row in enumerate(split.remove_columns(["image_a", "image_b"])):
        truth = json.loads(row["truth"]) if row.get("truth") else None
        metas.append(
            {
                "pair": i,
                "pair_id": row["pair_id"],
                "label": row["label"],
                "query": row["query"],
                "title": row["title"],
                "category": row.get("category") or "all",
                "label_confidence": row.get("label_confidence"),
                "truth_dimensions": truth["dimensions"] if truth else None,
            }
        )
    return metas


def fingerprint(
    cfg: EvalConfig, model: str, adapter: str | None, max_new_tokens: int
) -> dict[str, Any]:
    """What decides the answers: a saved answer is reused only under the same fingerprint."""
    from creative4u.paths import file_stamp
    from creative4u.vlm import model_stamp

    return {
        "model": model,
        "adapter": adapter,
        "stamp": model_stamp(model, adapter),
        "engine": cfg.engine,
        "max_new_tokens": max_new_tokens,
        "selection": 2,  # the record layout: one selection (both orders) per pair
        "dataset": file_stamp(Path(cfg.dataset) / "dataset_dict.json"),
        "split": cfg.split,
    }


def _answer_key(meta: dict[str, Any]) -> str:
    return str(meta["pair_id"])


def resumable_records(
    path: Path,
    fingerprint: dict[str, Any],
    split: Any,
    metas: list[dict[str, Any]],
    make: Any,
    max_new_tokens: int,
    chunk: int = 128,
    progress: bool = True,
    desc: str = "pairs",
    use_adapter: bool = True,
) -> list[dict[str, Any]]:
    """A selection record for every pair, reusing those `path` already holds under `fingerprint`
    and appending the rest chunk by chunk (a kill loses at most one chunk). Each pair goes
    through the `AsyncSelector` the server runs: both orders, combined into one decision."""
    import asyncio

    from tqdm import tqdm

    from creative4u.selection import AsyncSelector, SelectOptions, outcome_record

    have: dict[str, dict[str, Any]] = {}
    if path.is_file():
        lines = path.read_text().splitlines()
        head = json.loads(lines[0]) if lines else {}
        if head.get("fingerprint") == fingerprint:
            for line in lines[1:]:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # the line a kill cut short
                    continue
                have[rec["key"]] = rec["record"]
    if not have:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")
    todo = [i for i, m in enumerate(metas) if _answer_key(m) not in have]
    if have:
        logger.info("%s: %d of %d already in %s", desc, len(metas) - len(todo), len(metas), path)

    async def run() -> None:
        engine = make()
        await engine.start()
        selector = AsyncSelector(engine, default_max_tokens=max_new_tokens)
        options = SelectOptions(use_adapter=use_adapter)
        bar = tqdm(
            total=len(metas),
            initial=len(metas) - len(todo),
            desc=desc,
            unit="pair",
            disable=not progress,
        )
        try:
            with path.open("a") as fh:
                for start in range(0, len(todo), chunk):
                    idx = todo[start : start + chunk]
                    items = selector.pair_items(split.select(idx))
                    outcomes = await selector.compare_many(items, options)
                    for i, o in zip(idx, outcomes, strict=True):
                        rec = {**metas[i], **outcome_record(o)}
                        have[_answer_key(rec)] = rec
                        fh.write(json.dumps({"key": _answer_key(rec), "record": rec}) + "\n")
                    fh.flush()
                    bar.update(len(idx))
        finally:
            bar.close()
            await engine.close()

    if todo:
        asyncio.run(run())
    return [have[_answer_key(m)] for m in metas]


def model_metrics(records: list[dict[str, Any]], calibration: Any = None) -> dict[str, Any]:
    """The served decision's figures (one per pair), then the per-order diagnostics."""
    m = selection_summary(records, calibration)
    bins = [(0.5, 0.9), (0.9, 0.99), (0.99, 1.01)]
    by_conf = {}
    for lo, hi in bins:
        sel = [
            r
            for r in records
            if r["label_confidence"] is not None and lo <= r["label_confidence"] < hi
        ]
        if sel:
            by_conf[f"{lo:.2f}-{min(hi, 1.0):.2f}"] = {
                "n": len(sel),
                "accuracy": sum(r["winner"] == r["label"] for r in sel) / len(sel),
            }
    return {
        **m,
        "accuracy_by_label_confidence": by_conf,
        "accuracy_by_category": grouped_accuracy(records, "category"),
        "faithfulness": faithfulness(per_order_records(records)),
    }


def baseline_accuracy(
    name: str, split: Any, cfg: EvalConfig, metas: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """Accuracy of one baseline on the same pairs (None when it does not apply)."""
    n = len(split)
    if name == "chance":
        return {
            "accuracy": 0.5,
            "accuracy_ci": [0.5, 0.5],
            "n": n,
            "note": "expected accuracy of a coin flip",
        }
    labels = split["label"]  # columns, not rows: rows would decode both images each time
    pair_ids = split["pair_id"]

    def scored(picks: list[str], **extra: Any) -> dict[str, Any]:
        k = sum(p == lab for p, lab in zip(picks, labels, strict=True))
        return {"accuracy": k / n, "accuracy_ci": list(wilson_interval(k, n)), "n": n, **extra}

    def preferred(p_a: dict[str, float]) -> list[str]:
        """The pick of a baseline that gives P(A > B) by pair id."""
        return ["A" if p_a[pid] >= 0.5 else "B" for pid in pair_ids]

    if name == "oracle":
        if not n or not split[0].get("truth"):
            return None
        return scored([json.loads(t)["winner"] for t in split["truth"]])
    if name == "features":
        # the dataset's interpretable-feature baseline (fit on train by `data build`)
        path = Path(cfg.dataset) / "feature_baseline.parquet"
        if not path.exists():
            return None
        import pandas as pd

        p_a = dict(pd.read_parquet(path, columns=["pair_id", "p_a"]).itertuples(index=False))
        if any(pid not in p_a for pid in pair_ids):
            return None
        return scored(
            preferred(p_a),
            note="logistic regression on measured image features, fit on train",
        )
    if name == "m2fn":
        if not cfg.m2fn:
            return None
        from creative4u.m2fn import load as load_m2fn

        return scored(preferred(load_m2fn(cfg.m2fn).prefer_pairs([split])))
    if name == "base":
        if not cfg.base_model:
            return None
        records = resumable_records(
            Path(cfg.out) / "base_answers.jsonl",
            fingerprint(cfg, cfg.base_model, None, cfg.base_max_new_tokens),
            split,
            metas,
            lambda: engines.make_engine(cfg.engine, cfg.base_model, None),
            cfg.base_max_new_tokens,
            cfg.chunk,
            cfg.progress,
            desc="base model pairs",
        )
        m = selection_summary(records)
        return {
            **{k: m[k] for k in ("accuracy", "accuracy_ci", "n", "well_formed_rate")},
            "note": f"the model before fine-tuning, {cfg.base_max_new_tokens} tokens an answer "
            "(it does not write the protocol: its pick is mostly read by the answer probe)",
        }
    raise ValueError(f"unknown baseline {name!r}")


def load_split(dataset: str, split: str, max_pairs: int | None) -> Any:
    """One split of a CreativePair dataset, at most `max_pairs` of it (a fixed shuffle)."""
    from datasets import load_from_disk

    dd = load_from_disk(dataset)
    if split not in dd:
        raise ValueError(f"split {split!r} not in {dataset} (has {', '.join(dd)})")
    rows = dd[split]
    if max_pairs and len(rows) > max_pairs:
        rows = rows.shuffle(seed=0).select(range(max_pairs))
    return rows


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    from creative4u.calibration import Calibration
    from eval.report import write_report

    split = load_split(cfg.dataset, cfg.split, cfg.max_pairs)
    metas = pair_metas(split)
    calibration = Calibration.for_model(cfg.model, cfg.adapter)
    seconds: dict[str, float] = {}
    t0 = time.time()
    records = resumable_records(
        Path(cfg.out) / "answers.jsonl",
        fingerprint(cfg, cfg.model, cfg.adapter, cfg.max_new_tokens),
        split,
        metas,
        lambda: engines.make_engine(cfg.engine, cfg.model, cfg.adapter),
        cfg.max_new_tokens,
        cfg.chunk,
        cfg.progress,
        desc="selector pairs",
    )
    seconds["selector"] = round(time.time() - t0, 1)
    metrics = model_metrics(records, calibration)
    baselines = {}
    for name in cfg.baselines:
        t0 = time.time()
        res = baseline_accuracy(name, split, cfg, metas)
        if res is not None:
            baselines[name] = res
            seconds[f"baseline {name}"] = round(time.time() - t0, 1)
    result = {
        "model": cfg.model,
        "adapter": cfg.adapter,
        "dataset": cfg.dataset,
        "split": cfg.split,
        "engine": cfg.engine,
        "n_pairs": len(split),
        "generation_seconds": seconds["selector"],
        "stage_seconds": seconds,
        "calibration": (
            {"temperature": calibration.temperature, **calibration.fitted_on}
            if calibration
            else None
        ),
        **metrics,
        "faithfulness": (metrics["faithfulness"] or {}).get("overall"),
        "faithfulness_per_dimension": (metrics["faithfulness"] or {}).get("per_dimension"),
        "baselines": {k: v["accuracy"] for k, v in baselines.items()},
        "baseline_details": baselines,
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    with (out / "records.jsonl").open("w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    write_report(result, out)
    return result

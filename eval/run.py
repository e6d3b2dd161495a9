"""Evaluate a selector on a CreativePair split: every pair in both orders, through the serving
engine (vLLM) by default, against the baselines, into `report.md` + `metrics.json`.

Answers are generated in chunks and appended to `OUT/answers.jsonl` as they come (the `base`
baseline's to `OUT/base_answers.jsonl`), under a fingerprint of what produced them: an eval
killed half-way and rerun with the same arguments generates only the answers it lacks.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from creative4u.metrics import (
    faithfulness,
    grouped_accuracy,
    reliability,
    summarise,
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
    chunk: int = 256  # requests generated (and saved) at a time: two full vLLM CPU batches
    progress: bool = True


def requests_for(split: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    """Two requests per pair (A-first, then B-first) and what each record needs besides the answer."""
    from creative4u.generation import PairRequest

    reqs, metas = [], []
    for i, row in enumerate(split):
        truth = json.loads(row["truth"]) if row.get("truth") else None
        for swapped in (False, True):
            a, b = (row["image_b"], row["image_a"]) if swapped else (row["image_a"], row["image_b"])
            reqs.append(PairRequest(row["query"], row["title"], a, b))
            label = {"A": "B", "B": "A"}[row["label"]] if swapped else row["label"]
            tdims = None
            if truth:
                flip = {"A>B": "A<B", "A<B": "A>B", "A=B": "A=B"}
                tdims = {d: (flip[v] if swapped else v) for d, v in truth["dimensions"].items()}
            metas.append(
                {
                    "pair": i,
                    "pair_id": row["pair_id"],
                    "swapped": swapped,
                    "label": label,
                    "category": row.get("category") or "all",
                    "label_confidence": row.get("label_confidence"),
                    "truth_dimensions": tdims,
                }
            )
    return reqs, metas


def make_generator(engine: str, model: str, adapter: str | None) -> Any:
    from creative4u.generation import TransformersGenerator, VLLMGenerator

    if engine == "vllm":
        return VLLMGenerator(model, adapter, max_model_len=4096)
    if engine == "transformers":
        return TransformersGenerator.from_pretrained(model, adapter)
    raise ValueError(f"--engine must be vllm or transformers, got {engine!r}")


def model_records(gens: list[Any], metas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for g, m in zip(gens, metas, strict=True):
        p_a = g.p_a
        conf = (
            None
            if p_a is None or g.verdict.winner is None
            else (p_a if g.verdict.winner == "A" else 1 - p_a)
        )
        out.append(
            {
                **m,
                "winner": g.verdict.winner,
                "well_formed": g.verdict.well_formed,
                "p_a": p_a,
                "confidence": conf,
                "dimensions": {d: v.verdict for d, v in g.verdict.dimensions.items()},
                "text": g.text,
            }
        )
    return out


def _fingerprint(cfg: EvalConfig, model: str, adapter: str | None) -> dict[str, Any]:
    """What decides the answers: a saved answer is reused only under the same fingerprint."""
    from creative4u.paths import file_stamp
    from creative4u.vlm import model_stamp

    return {
        "model": model,
        "adapter": adapter,
        "stamp": model_stamp(model, adapter),
        "engine": cfg.engine,
        "max_new_tokens": cfg.max_new_tokens,
        "dataset": file_stamp(Path(cfg.dataset) / "dataset_dict.json"),
        "split": cfg.split,
    }


def _answer_key(meta: dict[str, Any]) -> str:
    return f"{meta['pair_id']}|{int(meta['swapped'])}"


def resumable_records(
    path: Path,
    fingerprint: dict[str, Any],
    reqs: list[Any],
    metas: list[dict[str, Any]],
    make: Any,
    max_new_tokens: int,
    chunk: int = 256,
    progress: bool = True,
    desc: str = "answers",
) -> list[dict[str, Any]]:
    """Records for every request, reusing those `path` already holds under `fingerprint` and
    appending the rest chunk by chunk (a kill loses at most one chunk)."""
    from tqdm import tqdm

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
    if todo:
        generator = make()
        bar = tqdm(
            total=len(metas),
            initial=len(metas) - len(todo),
            desc=desc,
            unit="answer",
            disable=not progress,
        )
        with path.open("a") as fh:
            for start in range(0, len(todo), chunk):
                idx = todo[start : start + chunk]
                gens = generator.generate([reqs[i] for i in idx], max_new_tokens=max_new_tokens)
                for rec in model_records(gens, [metas[i] for i in idx]):
                    have[_answer_key(rec)] = rec
                    fh.write(json.dumps({"key": _answer_key(rec), "record": rec}) + "\n")
                fh.flush()
                bar.update(len(idx))
        bar.close()
    return [have[_answer_key(m)] for m in metas]


def model_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    m = summarise(records)
    rel = reliability(
        [r["confidence"] for r in records], [r["winner"] == r["label"] for r in records]
    )
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
        "ece": rel["ece"],
        "reliability": rel["bins"],
        "accuracy_by_label_confidence": by_conf,
        "accuracy_by_category": grouped_accuracy(records, "category"),
        "faithfulness": faithfulness(records),
    }


def baseline_accuracy(
    name: str, split: Any, cfg: EvalConfig, reqs: list[Any], metas: list[dict[str, Any]]
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
            _fingerprint(cfg, cfg.base_model, None),
            reqs,
            metas,
            lambda: make_generator(cfg.engine, cfg.base_model, None),
            cfg.max_new_tokens,
            cfg.chunk,
            cfg.progress,
            desc="base model answers",
        )
        m = summarise(records)
        return {k: m[k] for k in ("accuracy", "accuracy_ci", "n", "well_formed_rate")}
    raise ValueError(f"unknown baseline {name!r}")


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    from datasets import load_from_disk

    from eval.report import write_report

    dd = load_from_disk(cfg.dataset)
    if cfg.split not in dd:
        raise ValueError(f"split {cfg.split!r} not in {cfg.dataset} (has {', '.join(dd)})")
    split = dd[cfg.split]
    if cfg.max_pairs and len(split) > cfg.max_pairs:
        split = split.shuffle(seed=0).select(range(cfg.max_pairs))
    reqs, metas = requests_for(split)
    t0 = time.time()
    records = resumable_records(
        Path(cfg.out) / "answers.jsonl",
        _fingerprint(cfg, cfg.model, cfg.adapter),
        reqs,
        metas,
        lambda: make_generator(cfg.engine, cfg.model, cfg.adapter),
        cfg.max_new_tokens,
        cfg.chunk,
        cfg.progress,
        desc="selector answers",
    )
    gen_s = time.time() - t0
    metrics = model_metrics(records)
    baselines = {}
    for name in cfg.baselines:
        res = baseline_accuracy(name, split, cfg, reqs, metas)
        if res is not None:
            baselines[name] = res
    result = {
        "model": cfg.model,
        "adapter": cfg.adapter,
        "dataset": cfg.dataset,
        "split": cfg.split,
        "engine": cfg.engine,
        "n_pairs": len(split),
        "generation_seconds": round(gen_s, 1),
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

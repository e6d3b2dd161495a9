"""Several bases scored on the same held-out perception examples, field by field, with intervals.

Each model answers the same first `--examples` examples of the corpus's held-out split (greedy,
as the model card scores them); every field gets its accuracy with a normal interval, and each
model after the first gets its paired difference from the first (per example, normal interval).

    python experiments/perception_compare.py runs/pretrain/corpus models/small-base runs/exp/a \
        --examples 1000 --out experiments/results/x.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def per_example(model_path: str, rows, batch_size: int) -> list[dict[str, bool]]:
    """{field: right} for each example (a field listed once per creative counts as all right)."""
    import torch

    from creative4u.generation import generate_texts
    from creative4u.perception import _drop_empty_text, score
    from creative4u.vlm import load

    model, processor = load(model_path, dtype=torch.float32)
    prompts = [_drop_empty_text(p) for p in rows["prompt"]]
    generated = generate_texts(
        model, processor, prompts, list(rows["images"]), max_new_tokens=200, batch_size=batch_size
    )
    out = []
    for task, completion, got in zip(rows["task"], rows["completion"], generated, strict=True):
        fields: dict[str, list[bool]] = {}
        for name, ok in score(task, completion[0]["content"], got):
            fields.setdefault(name, []).append(ok)
        out.append({k: sum(v) / len(v) for k, v in fields.items()})
    return out


def mean_ci(values: list[float]) -> list[float]:
    """The mean and its 95 % normal interval (an example's value is the share of its
    occurrences of the field that are right: 0, 1, or 0.5 for a two-creative description)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((x - mean) ** 2 for x in values) / max(1, n - 1)
    half = 1.96 * math.sqrt(var / n)
    return [mean, mean - half, mean + half]


def main() -> None:
    from datasets import load_from_disk

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("corpus")
    p.add_argument("models", nargs="+")
    p.add_argument("--examples", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default=None)
    args = p.parse_args()

    split = load_from_disk(args.corpus)["heldout"]
    rows = split.select(range(min(args.examples, len(split))))
    scored = {m: per_example(m, rows, args.batch_size) for m in args.models}
    first = args.models[0]
    fields = sorted({f for ex in scored[first] for f in ex})
    report: dict[str, dict] = {}
    for f in fields:
        idx = [i for i, ex in enumerate(scored[first]) if f in ex]
        row: dict[str, dict] = {}
        for m in args.models:
            vals = [scored[m][i].get(f, 0.0) for i in idx]
            row[m] = {"accuracy": mean_ci(vals)[0], "n": len(vals), "ci": mean_ci(vals)[1:]}
            if m != first:
                d = [scored[m][i].get(f, 0.0) - scored[first][i].get(f, 0.0) for i in idx]
                row[m]["minus_first"] = mean_ci(d)
        report[f] = row
    names = [Path(m).name for m in args.models]
    print(f"{'field':32s} " + " ".join(f"{n:>26s}" for n in names))
    for f, row in report.items():
        cells = []
        for m in args.models:
            r = row[m]
            cell = f"{r['accuracy']:.3f}"
            if "minus_first" in r:
                d, lo, hi = r["minus_first"]
                cell += f" {d:+.3f} [{lo:+.3f},{hi:+.3f}]"
            cells.append(f"{cell:>26s}")
        print(f"{f:32s} " + " ".join(cells) + f"  n {row[first]['n']}")
    if args.out:
        Path(args.out).write_text(
            json.dumps({"corpus": args.corpus, "examples": len(rows), "fields": report}, indent=1)
        )


if __name__ == "__main__":
    main()

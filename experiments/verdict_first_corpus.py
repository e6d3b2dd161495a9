"""A probe corpus: the pretraining corpus with its two-creative comparisons written verdict first.

The shipped base learnt `query wants red: A red, B blue - A` (look, then decide); the protocol
asks for the verdict before its reason (`Q3 query match: A>B - ...`), and the SFT selector's
query and title verdicts stay at `A=B`. This rewrites every `compare_two` answer to
`query: A>B - query wants red: A red, B blue` (the protocol's signs, decided before the words that
justify them) and keeps the other tasks, for continued pretraining of the base.

    python experiments/verdict_first_corpus.py runs/pretrain/corpus runs/exp/corpus_vf --rows 24000
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

SIGN = {"A": "A>B", "B": "A<B", "same": "A=B"}


def verdict_first(text: str) -> str:
    from creative4u.perception import COMPARISONS

    out = []
    for line in text.splitlines():
        head, sep, verdict = line.strip().rpartition(" - ")
        name = next((c for c in COMPARISONS if head.startswith(c)), None)
        out.append(f"{name}: {SIGN[verdict.strip()]} - {head}" if sep and name else line)
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=24_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from datasets import DatasetDict, load_from_disk

    def rewrite(row: dict) -> dict:
        if row["task"] == "compare_two":
            msg = dict(row["completion"][0])
            msg["content"] = verdict_first(msg["content"])
            row["completion"] = [msg]
        return row

    dd = load_from_disk(args.corpus)
    train = dd["train"].shuffle(seed=args.seed).select(range(args.rows)).map(rewrite)
    heldout = dd["heldout"].map(rewrite)
    out = Path(args.out)
    DatasetDict({"train": train, "heldout": heldout}).save_to_disk(str(out))
    shutil.copyfile(Path(args.corpus) / "corpus.json", out / "corpus.json")
    print(train.filter(lambda r: r["task"] == "compare_two")[0]["completion"][0]["content"])


if __name__ == "__main__":
    main()

"""A CreativePair dataset with its rationales written again by the current scene teacher: the same
pairs, splits, labels and images, so that two SFT runs differ only in the teacher's wording.

    python experiments/scene_rationales.py runs/demo/dataset runs/demo/world runs/exp/dataset_q6

(`data build --teacher scene` writes the same rationales from the click log; this skips the
log's ingestion and the features it measures.)
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from datasets import load_from_disk

    from data.teachers import scene as scene_teacher

    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("world")
    ap.add_argument("out")
    args = ap.parse_args()
    scene = scene_teacher.load_scene(Path(args.world) / scene_teacher.SCENE_FILE)
    dd = load_from_disk(args.dataset)
    changed = 0
    for split in dd:
        ds = dd[split]
        rows = ds.select_columns(["creative_a", "creative_b", "query", "title", "label"])
        new = scene_teacher.rationales(list(rows), scene, list(ds["truth"]))
        changed += sum(a != b for a, b in zip(new, ds["rationale"], strict=True))
        dd[split] = ds.remove_columns("rationale").add_column("rationale", new)
    out = Path(args.out)
    dd.save_to_disk(str(out))
    for f in Path(args.dataset).iterdir():  # the impression table, card and baselines
        if f.is_file() and not (out / f.name).exists():
            shutil.copy(f, out / f.name)
    print(f"{changed} rationales changed; written to {out}")


if __name__ == "__main__":
    main()

"""What a policy's Q6 lines get right: the product it names (`water bottle suits a prop`), what
that product suits, the people and props it names for each creative, and whether its verdict is
right with and without those. The scene teacher's reason for the same pair and order is the
reference; the truth is the simulator's.

    python experiments/q6_reasons.py REPORT_DIR WORLD_DIR [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from creative4u.protocol import flip_comparison, parse  # noqa: E402
from data.teachers.scene import SCENE_FILE, load_scene, reasons  # noqa: E402

LINE = re.compile(r"(.*) suits a (\w+): (.*)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("world")
    ap.add_argument("--out")
    args = ap.parse_args()
    scene = load_scene(Path(args.world) / SCENE_FILE)
    c: Counter[str] = Counter()
    for text in (Path(args.report) / "records.jsonl").read_text().splitlines():
        r = json.loads(text)
        _, _, ca, cb = r["pair_id"].split("|")
        for o in r["orders"]:
            a, b = (cb, ca) if o["swapped"] else (ca, cb)
            want = LINE.match(reasons(scene[a], scene[b], r["query"], r["title"])["Q6"])
            dv = parse(o["text"]).dimensions.get("Q6")
            got = LINE.match(dv.reason.strip()) if dv else None
            if not (want and got):
                c["unread"] += 1
                continue
            truth = r["truth_dimensions"]["Q6"]
            right = dv.verdict == (flip_comparison(truth) if o["swapped"] else truth)
            known = got.group(2) == want.group(2) and got.group(3) == want.group(3)
            c["lines"] += 1
            c["product"] += got.group(1) == want.group(1)
            c["suits"] += got.group(2) == want.group(2)
            c["people_props"] += got.group(3) == want.group(3)
            c["verdict"] += right
            c["suits_and_values_right"] += known
            c["verdict_right_when_suits_and_values_right"] += right and known
            c["verdict_right_otherwise"] += right and not known
    n, k = c["lines"], c["suits_and_values_right"]
    out = {
        "lines": n,
        "unread": c["unread"],
        "product_named_right": c["product"] / n,
        "suits_right": c["suits"] / n,
        "people_and_props_right": c["people_props"] / n,
        "verdict_right": c["verdict"] / n,
        "verdict_right_when_suits_and_values_right": c["verdict_right_when_suits_and_values_right"]
        / max(1, k),
        "verdict_right_otherwise": c["verdict_right_otherwise"] / max(1, n - k),
        "suits_and_values_right_lines": k,
    }
    for key, v in out.items():
        print(f"{key:<44} {v:.3f}" if isinstance(v, float) else f"{key:<44} {v}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""How a selector writes the Q3-Q9 lines of creatives that show the same value, and how often
those verdicts are right.

The scene teacher once wrote `both plain` where both creatives show the same value and `A plain,
B cluttered` where they differ, so a model had to decide whether the two were equal before
naming either. This reads an eval report's `records.jsonl` and sorts every well-formed line
(each order) by how its reason names the two creatives: `both x`, `A x, B y` with x != y, or
`A x, B x` (each named, the same value; the marks `yes`/`no` left out), and counts the verdicts
that match the truth in each group.

    python experiments/same_value_lines.py runs/demo/report [--out results.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from creative4u.protocol import DIMENSION_IDS, parse  # noqa: E402

FLIP = {"A>B": "A<B", "A<B": "A>B"}


def kind(dimension: str, reason: str) -> str:
    """`both`, `differ`, `same` or `other` for a reason's naming of the two creatives."""
    body = reason.rsplit(": ", 1)[1] if ": " in reason else reason  # after `title says red: `
    body = body.removeprefix("text ")
    if body.startswith("both "):
        return "both"
    m = re.match(r"A (.*?)[,;] B (.*)$", body)
    if not m:
        return "other"
    a, b = (re.sub(r" (yes|no)$", "", x.strip()) for x in m.groups())
    return "same" if a == b else "differ"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--out")
    args = ap.parse_args()
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in (Path(args.report) / "records.jsonl").read_text().splitlines():
        r = json.loads(line)
        for o in r["orders"]:
            if not o["well_formed"]:
                continue
            truth = r["truth_dimensions"]
            if o["swapped"]:
                truth = {d: FLIP.get(v, v) for d, v in truth.items()}
            v = parse(o["text"])
            for d in DIMENSION_IDS:
                k = kind(d, v.dimensions[d].reason)
                right = v.dimensions[d].verdict == truth[d]
                for key in (d, "all"):
                    counts[key][k, "n"] += 1
                    counts[key][k, "right"] += right
    out = {
        d: {
            k: {"lines": c[k, "n"], "right": round(c[k, "right"] / c[k, "n"], 3)}
            for k in ("both", "differ", "same", "other")
            if c[k, "n"]
        }
        for d, c in counts.items()
    }
    for d, groups in out.items():
        print(d, "  ".join(f"{k}: {g['right']:.3f} of {g['lines']}" for k, g in groups.items()))
    if args.out:
        Path(args.out).write_text(json.dumps({"report": args.report, **out}, indent=1) + "\n")


if __name__ == "__main__":
    main()

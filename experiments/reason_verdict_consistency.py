"""Does a selector's Q4 verdict follow from the colours its own reason names?

Reads an eval report's `records.jsonl` and the world's scene record, and counts, for the Q4
(title match) line: how often the colours the reason names are the creatives' shown colours, how
often the verdict those colours imply is the true one, and how often the written verdict is the
implied one. A model that sees but does not decide from what it saw scores high on the first two
and low on the last.

    python experiments/reason_verdict_consistency.py REPORT_DIR WORLD_DIR
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd

from creative4u.protocol import parse

_Q4 = re.compile(r"title says (\w+): (?:A (\w+), B (\w+)|both (\w+))")


def main(report: Path, world: Path) -> dict[str, float]:
    scene = pd.read_parquet(world / "creatives.parquet").set_index("creative_id")
    n = seen_a = seen_b = implied_true = written_implied = 0
    for line in (report / "records.jsonl").read_text().splitlines():
        r = json.loads(line)
        _, _, ca, cb = r["pair_id"].split("|")
        if r["swapped"]:
            ca, cb = cb, ca
        q4 = parse(r["text"]).dimensions.get("Q4")
        m = _Q4.search(q4.reason) if q4 else None
        if not m:
            continue
        title, a, b = m[1], m[2] or m[4], m[3] or m[4]
        implied = "A=B" if (a == title) == (b == title) else ("A>B" if a == title else "A<B")
        n += 1
        seen_a += a == scene.loc[ca, "shown_colour"]
        seen_b += b == scene.loc[cb, "shown_colour"]
        implied_true += implied == r["truth_dimensions"]["Q4"]
        written_implied += implied == q4.verdict
    return {
        "lines": n,
        "colour of A named right": seen_a / max(n, 1),
        "colour of B named right": seen_b / max(n, 1),
        "implied verdict is the true one": implied_true / max(n, 1),
        "written verdict is the implied one": written_implied / max(n, 1),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2])), indent=1))

"""The dataset card: README.md for people, card.json with the same numbers for machines.

A CreativePair dataset is only as trustworthy as its labels, so the card states how they were
made (rule and parameters, sources), what was thrown away and why (quarantine by reason, with
the row counts that must add up), and two reference accuracies on the test split: the oracle
(the winner by true CTR, when the log is simulated) and the interpretable-feature baseline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def write_card(card: dict[str, Any], out: Path) -> None:
    (out / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    (out / "README.md").write_text(render_card(card))


def render_card(c: dict[str, Any]) -> str:
    rows = c["rows"]
    lines = [
        "# CreativePair dataset",
        "",
        "Pairs of ad creatives of the same product shown for the same search query, labelled by "
        "which one users clicked more, with a protocol-format rationale per pair. Splits are by "
        "product (no product appears in two of train / validation / test).",
        "",
        "## Sources",
        "",
        f"- click log: `{c['sources']['logs']}` ({c['sources']['format']})",
        f"- images: `{c['sources']['images']}`",
        f"- truth: `{c['sources']['truth'] or 'none'}`",
        f"- rationale teacher: {c['teacher']['name']}",
        f"- seed: {c['seed']}",
        "",
        "## Labelling rule",
        "",
        f"{c['rule']['description']}.",
        "`label_confidence` is P(label is right) under Beta(1 + clicks, 1 + non-clicks) posteriors.",
        "",
        "| parameter | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in c["rule"]["params"].items()),
        "",
        "## Rows",
        "",
        "| | rows |",
        "|---|---|",
        f"| read | {rows['in']:,} |",
        f"| kept | {rows['kept']:,} |",
        f"| quarantined | {rows['quarantined']:,} |",
        "",
        f"Counts add up: {rows['in']:,} read = {rows['kept']:,} kept + {rows['quarantined']:,} "
        f"quarantined ({'yes' if rows['add_up'] else 'NO'}). Quarantined rows are in "
        "`quarantine.parquet` with their `reason` and `detail`.",
        "",
    ]
    if c["quarantine"]:
        lines += ["| quarantine reason | rows |", "|---|---|"]
        lines += [f"| {k} | {v:,} |" for k, v in c["quarantine"].items()]
        lines.append("")
    lines += [
        f"Impression table: {c['impressions']['rows']:,} cells (creative x context) in "
        f"`impressions.parquet`, with the product's `split`. {c['creatives']:,} creatives of "
        f"{c['products']:,} products; {c['pairs']['mined']:,} same-product same-query pairs "
        f"mined, {c['pairs']['labelled']:,} labelled by the rule.",
        "",
        "## Splits",
        "",
        "| split | products | pairs | label A | mean label confidence |",
        "|---|---|---|---|---|",
    ]
    for name, s in c["splits"].items():
        conf = "-" if s["mean_confidence"] is None else f"{s['mean_confidence']:.3f}"
        lines.append(
            f"| {name} | {s['products']:,} | {s['pairs']:,} | {_pct(s['label_a'])} | {conf} |"
        )
    lines.append("")
    if c["pairs"].get("unlabelled_withheld"):
        lines += [
            f"Unlabelled pairs are kept for training products only; "
            f"{c['pairs']['unlabelled_withheld']:,} of held-out products were left out.",
            "",
        ]
    lines += [
        "## Reference accuracies",
        "",
        "| measure | split | accuracy | 95 % interval | pairs |",
    ]
    lines.append("|---|---|---|---|---|")
    for name, o in (c.get("oracle") or {}).items():
        lines.append(
            f"| oracle (winner by true CTR = label) | {name} | {_pct(o['accuracy'])} | "
            f"{_pct(o['ci95'][0])} - {_pct(o['ci95'][1])} | {o['n']:,} |"
        )
    b = c.get("feature_baseline")
    if b:
        lines.append(
            f"| feature baseline (logistic regression on feature differences, fit on train) | "
            f"test | {_pct(b['accuracy'])} | {_pct(b['ci95'][0])} - {_pct(b['ci95'][1])} | "
            f"{b['n_test']:,} |"
        )
    rc = c.get("rationale_ceiling")
    if rc:
        lines.append(
            f"| rationale ceiling (logistic regression on the rationales' Q3-Q9 verdicts, fit on "
            f"train) | test | {_pct(rc['accuracy'])} | {_pct(rc['ci95'][0])} - "
            f"{_pct(rc['ci95'][1])} | {rc['n_test']:,} |"
        )
    if not c.get("oracle") and not b:
        lines.append("| (no truth table and too few pairs for the baseline) | | | | |")
    lines.append("")
    if b:
        lines += ["Strongest baseline coefficients (standardised feature differences A - B):", ""]
        lines += ["| feature | coefficient |", "|---|---|"]
        lines += [f"| {k} | {v:+.3f} |" for k, v in b["top_coefficients"].items()]
        lines.append("")
    lines += ["## Rationales", "", "| source | pairs |", "|---|---|"]
    lines += [f"| {k} | {v:,} |" for k, v in c["rationale_sources"].items()]
    lines.append("")
    agree = c.get("rationale_vs_truth")
    if agree and agree["n"]:
        lines += [
            f"Rationale verdicts that match the true per-dimension comparison ({agree['n']:,} "
            f"labelled pairs, all splits; mean {_pct(agree['mean'])}):",
            "",
            "| dimension | agreement |",
            "|---|---|",
            *(f"| {d} | {_pct(v)} |" for d, v in agree["per_dimension"].items()),
            "",
        ]
    if c["teacher"].get("name") == "scene":
        lines += [
            "The scene teacher reads what the simulator drew, so its verdicts are the true "
            "comparisons: this agreement is the teacher's by construction. How often the trained "
            "selector's own verdicts match the truth is measured by `creative4u eval` (rationale "
            "faithfulness).",
            "",
        ]
    if rc:
        lines += [
            "The rationale ceiling is what a model that writes these verdicts exactly, and weighs "
            "them as well as a logistic regression can, would score on test: a model trained to "
            "imitate these rationales is bounded near it, however long it trains.",
            "",
        ]
    t = c["teacher"]
    if t.get("stats"):
        st = t["stats"]
        lines += [
            f"Teacher `{t.get('model')}` at `{t.get('url')}`, up to {t.get('tries')} tries per pair: "
            f"{st['requests']:,} requests, {st['cache_hits']:,} cached replies reused, "
            f"{st['accepted']:,} accepted, {st['fallbacks']:,} fell back to the features teacher, "
            f"{st['errors']:,} request errors.",
            "",
        ]
    lines += [
        "## Columns",
        "",
        "`" + "`, `".join(c["columns"]) + "`",
        "",
        "Load with `datasets.load_from_disk(PATH)`; images are embedded, so the folder is "
        "self-contained. `features.parquet` holds the measured interpretable features per image "
        "(what the features teacher and the baseline read).",
        "",
    ]
    return "\n".join(lines)

"""Plain-text rendering of select and rank results for the terminal (the `--json` flag skips it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _num(x: Any, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def _yes_no(x: bool | None) -> str:
    return "unknown" if x is None else ("yes" if x else "no")


def _clip(text: str | None, width: int) -> str:
    text = (text or "-").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def format_select(result: dict[str, Any], names: Sequence[str] = ("A", "B")) -> str:
    w = result["winner"]
    name = names[0] if w == "A" else names[1]
    ctr = result.get("ctr") or {}
    lines = [
        f"winner: {w} ({name})   confidence {_num(result.get('confidence'))}"
        f"{' (calibrated)' if result.get('calibrated') else ''}   "
        f"decided by {result.get('decided_by')}   order swap agreed: {_yes_no(result.get('order_swap_agreed'))}",
        f"A = {names[0]}   B = {names[1]}",
        "CTR (M2FN): "
        + (
            f"A {_num(ctr.get('a'), '.4f')}   B {_num(ctr.get('b'), '.4f')}"
            if ctr.get("a") is not None or ctr.get("b") is not None
            else "not loaded"
        ),
        f"well-formed: {_yes_no(result.get('well_formed'))}",
    ]
    for p in result.get("problems") or []:
        lines.append(f"  ! {p}")
    lines.append("")
    lines.append(f"{'':3} {'dimension':<17} {'verdict':<7} {'swap':<5} reason")
    for d in result.get("dimensions") or []:
        lines.append(
            f"{d['id']:<3} {d['name']:<17} {d['verdict'] or '-':<7} {d.get('swap_verdict') or '-':<5} "
            f"{_clip(d.get('reason'), 70)}"
        )
    if result.get("rationale") and not result.get("well_formed"):
        lines.append("")
        lines.append(f"raw output (not well-formed): {_clip(result['rationale'], 160)}")
    return "\n".join(lines)


def format_rank(result: dict[str, Any], names: Sequence[str] | None = None) -> str:
    lines = [
        f"{'rank':<5} {'creative':<32} {'score':>8} {'wins':>6} {'ctr':>8}  next to: beat (>), lost to (<), tied (=)"
    ]
    for row in result["ranking"]:
        name = names[row["index"]] if names else row["id"]
        summary = ", ".join(
            f"{'=' if d['won'] is None else '>' if d['won'] else '<'}{names[d['against_index']] if names else d['against']}"
            f" ({_num(d['p_win'], '.2f')})"
            for d in row["decisive"]
        )
        lines.append(
            f"{row['rank']:<5} {_clip(name, 32):<32} {_num(row['score'], '+.3f'):>8} "
            f"{_num(row['expected_wins'], '.2f'):>6} {_num(row['ctr'], '.4f'):>8}  {summary}"
        )
    lines.append("")
    lines.append(result.get("method", ""))
    for p in result.get("problems") or []:
        lines.append(f"  ! {p}")
    return "\n".join(lines)

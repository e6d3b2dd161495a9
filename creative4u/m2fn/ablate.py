"""The paper's table 4 on our data: the same cells, seed and schedule, modules switched on and off.

Writes DIR/<modules>/ (one checkpoint per configuration, e.g. DIR/OOxO), DIR/ablation.json (a list
of {aux, low, att, high, sprc, lcc, pair_accuracy, ...}) and DIR/ablation.md. The data is prepared
once and shared; a configuration whose folder already holds a finished run is not trained again,
so an interrupted ablation continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from creative4u.m2fn.checkpoint import FEATURES, METRICS
from creative4u.m2fn.config import MODULES, M2FNConfig, TrainConfig

# (aux, low, att, high), in the order of the paper's table 4
TABLE4: tuple[tuple[bool, bool, bool, bool], ...] = (
    (False, False, False, False),
    (True, False, False, False),
    (True, True, False, False),
    (True, False, True, False),
    (True, False, False, True),
    (True, True, True, False),
    (True, True, False, True),
    (True, True, True, True),
)
NAMES = {
    (False, False, False, False): "image only",
    (True, False, False, False): "concatenation",
    (True, True, True, True): "M2FN (all modules)",
}


def configurations(base: M2FNConfig) -> list[M2FNConfig]:
    return [dataclasses.replace(base, **dict(zip(MODULES, flags, strict=True))) for flags in TABLE4]


def ablate(base: M2FNConfig, cfg: TrainConfig) -> list[dict[str, Any]]:
    from creative4u.m2fn.data import prepare
    from creative4u.m2fn.image_features import FeatureCache
    from creative4u.m2fn.train import flush_denormals, train

    flush_denormals()
    out = Path(cfg.out)
    _check_dir(out, cfg.force)
    out.mkdir(parents=True, exist_ok=True)
    cache = FeatureCache(cfg.feature_cache or out / FEATURES)
    prepared = prepare(base, cfg, cache, progress=cfg.progress)
    cache.save()
    results = []
    for i, mc in enumerate(configurations(base), 1):
        run_dir = out / mc.modules_on
        done = run_dir / METRICS
        if done.is_file() and not cfg.force:
            metrics = json.loads(done.read_text())
        else:
            print(f"[{i}/{len(TABLE4)}] {mc.modules_on} (aux, low, att, high)", flush=True)
            run_cfg = dataclasses.replace(cfg, out=str(run_dir), feature_cache=None)
            metrics = train(mc, run_cfg, prepared=prepared)
        results.append(row(mc, metrics))
        write(out, results)
    return results


def row(mc: M2FNConfig, m: dict[str, Any]) -> dict[str, Any]:
    keys = ("sprc", "lcc", "pair_accuracy", "sprc_grouped", "lcc_grouped", "n_cells", "n_pairs")
    return {
        **{k: getattr(mc, k) for k in MODULES},
        "modules": mc.modules_on,
        **{k: m.get(k) for k in keys},
        "validation_sprc": m.get("validation_sprc"),
    }


def write(out: Path, results: list[dict[str, Any]]) -> None:
    (out / "ablation.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "ablation.md").write_text(markdown(results))


def markdown(results: list[dict[str, Any]]) -> str:
    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}"

    def o(b: bool) -> str:
        return "O" if b else "×"

    lines = [
        "# M2FN ablation (the paper's table 4)",
        "",
        "Modules: auxiliary input, low-level fusion (CBN), spatial attention, high-level fusion. "
        "O on, × off. SPRC / LCC between predicted and logged CTR of the test cells; "
        "pair accuracy of P(A > B) on the CreativePair test pairs.",
        "",
        "| Aux | Low | Att | High | SPRC | LCC | SPRC (creative × query) | pair accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {o(r['aux'])} | {o(r['low'])} | {o(r['att'])} | {o(r['high'])} | "
            f"{f(r['sprc'])} | {f(r['lcc'])} | {f(r.get('sprc_grouped'))} | {f(r['pair_accuracy'])} |"
        )
    by = {r["modules"]: r for r in results}
    full, img, cat = by.get("OOOO"), by.get("xxxx"), by.get("Oxxx")
    if full and img and cat and None not in (full["sprc"], img["sprc"], cat["sprc"]):
        verdict = full["sprc"] > img["sprc"] and full["sprc"] > cat["sprc"]
        lines += [
            "",
            f"Full model vs image only: SPRC {f(full['sprc'])} vs {f(img['sprc'])}; "
            f"vs concatenation: {f(full['sprc'])} vs {f(cat['sprc'])} — "
            + (
                "the full model is best of the three."
                if verdict
                else "the full model is NOT best of the three."
            ),
        ]
    n = results[0].get("n_cells") if results else None
    if n:
        lines += ["", f"{n} test cells, {results[0].get('n_pairs') or 0} test pairs."]
    return "\n".join(lines) + "\n"


def _check_dir(out: Path, force: bool) -> None:
    """DIR may be new, empty, an earlier ablation of the same data (continued), or forced."""
    if force or not out.exists():
        return
    ours = {c.modules_on for c in configurations(M2FNConfig())} | {
        FEATURES,
        "ablation.json",
        "ablation.md",
    }
    other = sorted(p.name for p in out.iterdir() if p.name not in ours)
    if other:
        raise ValueError(
            f"{out} holds other files ({', '.join(other[:3])}); use --force or a new DIR"
        )

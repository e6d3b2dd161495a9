"""The paper's table 4 on our data, with HCCM's rows beside it, over several training seeds.

Every configuration trains on the same prepared cells; each seed changes the initialisation, the
batch order and dropout, not the data, so a row's spread is the training noise a single run hides.
Writes DIR/<name>/seed<k>/ (one checkpoint per configuration and seed, e.g. DIR/OOxO/seed0 or
DIR/OOOO+cm/seed2), DIR/ablation.json (one entry per configuration: its flags, per-seed metrics,
mean and standard deviation), DIR/ablation.md and DIR/ablation.png. The data is prepared once and
shared; a run whose folder already holds its metrics is not trained again, so an interrupted
ablation continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

from creative4u.m2fn.checkpoint import FEATURES, METRICS
from creative4u.m2fn.config import HCCM, MODULES, M2FNConfig, TrainConfig

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
ALL_HCCM = dict.fromkeys(HCCM, True)
# HCCM's modules on the full M2FN one at a time and together, and on the concatenation base
# (HCCM's own setting: an MLP over the concatenated inputs).
HCCM_ROWS: tuple[tuple[tuple[bool, bool, bool, bool], dict[str, bool]], ...] = (
    (TABLE4[-1], {"cat_att": True}),
    (TABLE4[-1], {"cat_map": True}),
    (TABLE4[-1], {"hybrid": True}),
    (TABLE4[-1], ALL_HCCM),
    (TABLE4[1], ALL_HCCM),
)
ROWS = tuple((flags, {}) for flags in TABLE4) + HCCM_ROWS
NAMES = {
    "xxxx": "image only",
    "Oxxx": "concatenation",
    "OOOO": "M2FN (all modules)",
    "OOOO+c": "M2FN + category attention",
    "OOOO+m": "M2FN + category map",
    "OOOO+h": "M2FN + hybrid CNN",
    "OOOO+cmh": "M2FN + HCCM",
    "Oxxx+cmh": "concatenation + HCCM",
}
METRIC_KEYS = ("sprc", "lcc", "sprc_grouped", "lcc_grouped", "pair_accuracy", "validation_sprc")
DEFAULT_SEEDS = (0, 1, 2)


def configurations(base: M2FNConfig) -> list[M2FNConfig]:
    off = dict.fromkeys(HCCM, False)
    return [
        dataclasses.replace(base, **dict(zip(MODULES, flags, strict=True)), **(off | hccm))
        for flags, hccm in ROWS
    ]


def ablate(
    base: M2FNConfig, cfg: TrainConfig, seeds: tuple[int, ...] = DEFAULT_SEEDS
) -> list[dict[str, Any]]:
    from creative4u.m2fn.data import prepare
    from creative4u.m2fn.image_features import FeatureCache
    from creative4u.m2fn.train import flush_denormals, train

    if not seeds:
        raise ValueError("the ablation needs at least one seed")
    flush_denormals()
    out = Path(cfg.out)
    _check_dir(out, cfg.force)
    out.mkdir(parents=True, exist_ok=True)
    cache = FeatureCache(cfg.feature_cache or out / FEATURES)
    prepared = prepare(base, cfg, cache, progress=cfg.progress)
    cache.save()
    configs = configurations(base)
    results: list[dict[str, Any]] = []
    n_runs, i = len(configs) * len(seeds), 0
    for mc in configs:
        runs = []
        for seed in seeds:
            i += 1
            run_dir = out / mc.name / f"seed{seed}"
            done = run_dir / METRICS
            if done.is_file() and not cfg.force:
                runs.append(json.loads(done.read_text()))
                continue
            print(f"[{i}/{n_runs}] {mc.name} seed {seed}", flush=True)
            run_cfg = dataclasses.replace(cfg, out=str(run_dir), feature_cache=None, seed=seed)
            runs.append(train(mc, run_cfg, prepared=prepared))
        results.append(row(mc, runs, seeds))
        write(out, results)
    return results


def row(mc: M2FNConfig, runs: list[dict[str, Any]], seeds: tuple[int, ...]) -> dict[str, Any]:
    """One configuration: its flags, every seed's metrics, and their mean and spread."""
    out: dict[str, Any] = {
        **{k: getattr(mc, k) for k in (*MODULES, *HCCM)},
        "modules": mc.modules_on,
        "name": mc.name,
        "label": NAMES.get(mc.name, ""),
        "seeds": list(seeds),
        "n_cells": runs[0].get("n_cells"),
        "n_pairs": runs[0].get("n_pairs"),
        "train_seconds": [r.get("train_seconds") for r in runs],
    }
    for k in METRIC_KEYS:
        values = [r[k] for r in runs if r.get(k) is not None]
        out[k] = statistics.fmean(values) if values else None
        out[f"{k}_sd"] = statistics.stdev(values) if len(values) > 1 else None
        out[f"{k}_runs"] = [r.get(k) for r in runs]
    return out


def write(out: Path, results: list[dict[str, Any]]) -> None:
    (out / "ablation.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "ablation.md").write_text(markdown(results))
    plot(results, out / "ablation.png")


def markdown(results: list[dict[str, Any]]) -> str:
    def f(r: dict[str, Any], k: str) -> str:
        m, sd = r.get(k), r.get(f"{k}_sd")
        if m is None:
            return "-"
        return f"{m:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")

    def o(b: bool) -> str:
        return "O" if b else "×"

    seeds = results[0]["seeds"] if results else []
    lines = [
        "# M2FN ablation (the paper's table 4, with HCCM's modules)",
        "",
        "Modules: auxiliary input, low-level fusion (CBN), spatial attention, high-level fusion; "
        "HCCM: c category channel attention, m category-prior map, h fixed/trainable hybrid CNN. "
        "O on, × off. SPRC / LCC between predicted and logged CTR of the test cells; pair "
        "accuracy of P(A > B) on the CreativePair test pairs. Each cell: mean ± standard "
        f"deviation over {len(seeds)} training seed(s) ({', '.join(map(str, seeds))}) on the "
        "same cells.",
        "",
        "| Aux | Low | Att | High | HCCM | configuration | SPRC | LCC | SPRC (creative × query) "
        "| pair accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        hccm = "".join(c for m, c in HCCM.items() if r.get(m)) or "-"
        lines.append(
            f"| {o(r['aux'])} | {o(r['low'])} | {o(r['att'])} | {o(r['high'])} | {hccm} | "
            f"{r.get('label', '')} | {f(r, 'sprc')} | {f(r, 'lcc')} | {f(r, 'sprc_grouped')} | "
            f"{f(r, 'pair_accuracy')} |"
        )
    lines += verdicts({r["name"]: r for r in results})
    n = results[0].get("n_cells") if results else None
    if n:
        lines += ["", f"{n} test cells, {results[0].get('n_pairs') or 0} test pairs."]
    return "\n".join(lines) + "\n"


def verdicts(by: dict[str, dict[str, Any]]) -> list[str]:
    """The paper's claims, checked on the means and seed by seed."""
    out: list[str] = []
    full, img, cat = by.get("OOOO"), by.get("xxxx"), by.get("Oxxx")
    if full and img and cat and None not in (full["sprc"], img["sprc"], cat["sprc"]):
        best = full["sprc"] > img["sprc"] and full["sprc"] > cat["sprc"]
        each = _wins(full, img) and _wins(full, cat)
        out += [
            "",
            f"Full M2FN vs image only: SPRC {full['sprc']:.3f} vs {img['sprc']:.3f}; vs "
            f"concatenation: {cat['sprc']:.3f}. The full model is "
            + ("best of the three on the mean" if best else "NOT best of the three on the mean")
            + (", and in every seed." if each else "; not in every seed."),
        ]
    hccm = by.get("OOOO+cmh")
    if full and hccm and None not in (full["sprc"], hccm["sprc"]):
        gain = hccm["sprc"] - full["sprc"]
        out += [
            "",
            f"HCCM on the full M2FN: SPRC {hccm['sprc']:.3f} vs {full['sprc']:.3f} "
            f"({gain:+.3f}; better in {_count_wins(hccm, full)} of {len(full['seeds'])} seeds).",
        ]
    return out


def _count_wins(a: dict[str, Any], b: dict[str, Any], key: str = "sprc") -> int:
    return sum(
        1
        for x, y in zip(a[f"{key}_runs"], b[f"{key}_runs"], strict=False)
        if x is not None and y is not None and x > y
    )


def _wins(a: dict[str, Any], b: dict[str, Any], key: str = "sprc") -> bool:
    return _count_wins(a, b, key) == len(a[f"{key}_runs"])


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """SPRC and pair accuracy per configuration, mean with a bar of one standard deviation
    either side, each seed a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{r['name']}  {r.get('label', '')}".strip() for r in results]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(results) + 1.5), sharey=True)
    panels = (("sprc", "test SPRC"), ("pair_accuracy", "pair accuracy"))
    for ax, (key, title) in zip(axes, panels, strict=True):
        ys = list(range(len(results)))[::-1]
        means = [r.get(key) or 0.0 for r in results]
        sds = [r.get(f"{key}_sd") or 0.0 for r in results]
        ax.barh(ys, means, xerr=sds, color="#8fb3d9", ecolor="#333333", capsize=3)
        for y, r in zip(ys, results, strict=True):
            runs = [v for v in r.get(f"{key}_runs", []) if v is not None]
            ax.scatter(runs, [y] * len(runs), s=10, color="#1f3b5c", zorder=3)
        ax.set_title(title)
        ax.set_yticks(ys, names)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"M2FN ablation, {len(results[0]['seeds'])} seed(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _check_dir(out: Path, force: bool) -> None:
    """DIR may be new, empty, an earlier ablation of the same data (continued), or forced."""
    if force or not out.exists():
        return
    ours = {c.name for c in configurations(M2FNConfig())} | {
        FEATURES,
        "ablation.json",
        "ablation.md",
        "ablation.png",
    }
    other = sorted(p.name for p in out.iterdir() if p.name not in ours)
    if other:
        raise ValueError(
            f"{out} holds other files ({', '.join(other[:3])}); use --force or a new DIR"
        )

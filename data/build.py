"""`creative4u data build`: click logs + creative images -> a CreativePair dataset.

    creative4u data build --logs world/logs.parquet --images world/images --out pairs

Validate the log (bad rows to `quarantine.parquet`), sum clicks and impressions per creative and
query, mine same-product same-query pairs, label them by the chosen rule, split by product,
measure every creative once, write a rationale per labelled pair (features teacher, or an
OpenAI-compatible VLM with the features teacher as fallback), and save the `DatasetDict` with
`impressions.parquet`, `quarantine.parquet`, `features.parquet`, `README.md` and `card.json`
beside it. Deterministic under `--seed` (the VLM teacher through its reply cache).

Resumable: ingestion and every creative's measured features are kept in `OUT/.stages` keyed by
their inputs (`data.stages`), and the VLM teacher's replies in its reply cache, so rerunning a
killed build (same command, no `--force` needed) redoes only what had not finished.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from creative4u.schema import PAIR_COLUMNS, SPLITS, TRUTH_COLUMN, pair_features
from data.labelling import RULES, LabelRule
from data.teachers import TEACHERS

# What a build writes into DATASET (removed first when rebuilding with --force).
OUTPUTS: tuple[str, ...] = (
    "dataset_dict.json",
    "impressions.parquet",
    "quarantine.parquet",
    "features.parquet",
    "feature_baseline.parquet",
    "README.md",
    "card.json",
    *SPLITS,
    "unlabelled",
)


@dataclass
class BuildConfig:
    logs: str
    images: str
    out: str
    rule: LabelRule = field(default_factory=LabelRule)
    keep_unlabelled: bool = False
    truth: str | None = "auto"  # "auto": truth.parquet beside the log if present; None: none
    seed: int = 0
    val_frac: float = 0.1
    test_frac: float = 0.1
    teacher: str = "features"
    scene: str | None = None  # the scene teacher's creatives.parquet (default: beside LOGS)
    teacher_url: str | None = None
    teacher_model: str | None = None
    teacher_api_key: str = "EMPTY"
    teacher_tries: int = 4
    teacher_cache: str | None = None
    teacher_workers: int = 4
    teacher_max_tokens: int = 400
    teacher_temperature: float = 0.8
    workers: int | None = None  # workers measuring images (default: one per core)
    measure_pool: str = "thread"  # thread | process
    ocr: bool = True
    feature_cache: str | None = None
    memory_limit: str | None = None  # DuckDB's memory limit, e.g. "4GB" (default: 80 % of RAM)
    force: bool = False
    resume: bool = True  # reuse finished stages in OUT/.stages whose inputs are unchanged
    progress: bool = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = BuildConfig(logs="", images="", out="")
    io = p.add_argument_group("inputs and output")
    io.add_argument(
        "--logs", required=True, help="click log: a parquet or csv file, a folder, or a glob"
    )
    io.add_argument("--images", required=True, help="image root the log's `image` paths are in")
    io.add_argument("--out", required=True, help="dataset folder to write")
    io.add_argument(
        "--truth",
        default="auto",
        help="simulator truth table (default: truth.parquet beside LOGS if present; 'none' to skip)",
    )
    io.add_argument("--force", action="store_true", help="overwrite a finished dataset in --out")
    io.add_argument(
        "--memory-limit",
        default=None,
        help="memory DuckDB may use for the log, e.g. 4GB; beyond it, it spills to OUT's staging "
        "folder (default: DuckDB's, 80%% of RAM)",
    )
    io.add_argument(
        "--no-resume",
        action="store_true",
        help="redo every stage (default: reuse the finished stages an earlier run of the same "
        "inputs left in OUT/.stages, so a killed build resumes)",
    )
    lab = p.add_argument_group("labelling")
    lab.add_argument("--rule", choices=RULES, default="creative4u")
    lab.add_argument(
        "--min-impressions",
        type=int,
        default=d.rule.min_impressions,
        help="both creatives need more impressions than this (both rules; default %(default)s)",
    )
    lab.add_argument(
        "--min-gap",
        type=float,
        default=d.rule.min_gap,
        help="creative4u rule: relative CTR gap max/min - 1 must exceed this (default %(default)s)",
    )
    lab.add_argument(
        "--bayes-threshold",
        type=float,
        default=d.rule.threshold,
        help="bayes rule: P(CTR_winner > CTR_loser) must reach this (default %(default)s)",
    )
    lab.add_argument(
        "--keep-unlabelled",
        action="store_true",
        help="add an 'unlabelled' split with the pairs the rule does not label (training products)",
    )
    sp = p.add_argument_group("splits")
    sp.add_argument("--seed", type=int, default=d.seed)
    sp.add_argument("--val-frac", type=float, default=d.val_frac, help="share of products")
    sp.add_argument("--test-frac", type=float, default=d.test_frac, help="share of products")
    ft = p.add_argument_group("features")
    ft.add_argument(
        "--workers",
        type=int,
        default=d.workers,
        help="workers measuring images (OCR, colour, texture; default: one per core)",
    )
    ft.add_argument(
        "--measure-pool",
        choices=["thread", "process"],
        default=d.measure_pool,
        help="measure in threads or in worker processes (bench/bench_measure.py compares them)",
    )
    ft.add_argument("--no-ocr", action="store_true", help="skip OCR (text features read as none)")
    ft.add_argument(
        "--feature-cache",
        default=None,
        help="folder caching measured features across builds (default: OUT/.stages/features)",
    )
    t = p.add_argument_group("rationale teacher")
    t.add_argument(
        "--teacher",
        choices=TEACHERS,
        default=d.teacher,
        help="who writes the rationales: features (measured pixels, any log), scene (a "
        "CreativeSim world's scene record: its true per-dimension comparisons), openai (a VLM)",
    )
    t.add_argument(
        "--scene",
        default=None,
        help="the scene teacher's creatives.parquet (default: beside LOGS)",
    )
    t.add_argument("--teacher-url", default=None, help="OpenAI-compatible base URL (…/v1)")
    t.add_argument("--teacher-model", default=None, help="model name the endpoint serves")
    t.add_argument(
        "--teacher-api-key",
        default=None,
        help="API key (default: $OPENAI_API_KEY, else 'EMPTY' for local servers)",
    )
    t.add_argument(
        "--teacher-tries",
        type=int,
        default=d.teacher_tries,
        help="rejection-sampling attempts per pair (default %(default)s)",
    )
    t.add_argument(
        "--teacher-cache",
        default=None,
        help="reply cache folder (default: OUT/teacher_cache; a rerun reuses every reply in it)",
    )
    t.add_argument("--teacher-workers", type=int, default=d.teacher_workers)
    t.add_argument("--teacher-max-tokens", type=int, default=d.teacher_max_tokens)
    t.add_argument("--teacher-temperature", type=float, default=d.teacher_temperature)


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    truth = None if str(args.truth).lower() == "none" else args.truth
    return BuildConfig(
        logs=args.logs,
        images=args.images,
        out=args.out,
        rule=LabelRule(
            name=args.rule,
            min_impressions=args.min_impressions,
            min_gap=args.min_gap,
            threshold=args.bayes_threshold,
        ),
        keep_unlabelled=args.keep_unlabelled,
        truth=truth,
        seed=args.seed,
        val_frac=args.val_frac,
        test_frac=args.test_frac,
        teacher=args.teacher,
        scene=args.scene,
        teacher_url=args.teacher_url,
        teacher_model=args.teacher_model,
        teacher_api_key=args.teacher_api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
        teacher_tries=args.teacher_tries,
        teacher_cache=args.teacher_cache,
        teacher_workers=args.teacher_workers,
        teacher_max_tokens=args.teacher_max_tokens,
        teacher_temperature=args.teacher_temperature,
        workers=args.workers,
        measure_pool=args.measure_pool,
        ocr=not args.no_ocr,
        feature_cache=args.feature_cache,
        memory_limit=args.memory_limit,
        force=args.force,
        resume=not args.no_resume,
    )


def run(args: argparse.Namespace) -> int:
    card = build(config_from_args(args))
    print(f"dataset written to {args.out}")
    r = card["rows"]
    print(
        f"  rows: {r['in']:,} read = {r['kept']:,} kept + {r['quarantined']:,} quarantined"
        + (
            f" ({', '.join(f'{k}: {v}' for k, v in card['quarantine'].items())})"
            if r["quarantined"]
            else ""
        )
    )
    for name, s in card["splits"].items():
        print(f"  {name:<11} {s['pairs']:>7,} pairs, {s['products']:>5,} products")
    test_oracle = (card.get("oracle") or {}).get("test")
    if test_oracle:
        print(f"  oracle accuracy (test):            {test_oracle['accuracy']:.3f}")
    if card.get("feature_baseline"):
        print(f"  feature baseline accuracy (test):  {card['feature_baseline']['accuracy']:.3f}")
    if card.get("rationale_ceiling"):
        print(f"  rationale ceiling (test):          {card['rationale_ceiling']['accuracy']:.3f}")
    return 0


# --------------------------------------------------------------------------------------------


def _truth_path(cfg: BuildConfig) -> Path | None:
    if cfg.truth is None:
        return None
    if cfg.truth != "auto":
        p = Path(cfg.truth)
        if not p.is_file():
            raise FileNotFoundError(f"truth table not found: {p}")
        return p
    cand = Path(cfg.logs).parent / "truth.parquet"
    return cand if cand.is_file() else None


def _truth_column(pairs: Any, truth_file: Path) -> list[str]:
    """The `truth` JSON per pair (A/B as in the pair), "" where a creative has no truth row."""
    import pandas as pd

    from creative4u.protocol import DIMENSION_IDS
    from data.sim.truth import truth_record

    t = pd.read_parquet(truth_file)
    need = ["creative_id", "query", "true_ctr", *DIMENSION_IDS]
    missing = [c for c in need if c not in t.columns]
    if missing:
        raise ValueError(f"truth table {truth_file} lacks column(s) {', '.join(missing)}")
    index = {(str(r["creative_id"]), str(r["query"])): r for r in t[need].to_dict("records")}
    out = []
    for ca, cb, q in zip(pairs["creative_a"], pairs["creative_b"], pairs["query"], strict=True):
        a, b = index.get((ca, q)), index.get((cb, q))
        out.append("" if a is None or b is None else json.dumps(truth_record(a, b)))
    return out


def _scene_rationales(cfg: BuildConfig, rows: list[dict], truth: list[str] | None) -> list[str]:
    """The scene teacher's rationales: it needs the world's scene record and its truth table."""
    from data.teachers import scene as scene_teacher

    if truth is None:
        raise ValueError(
            "--teacher scene needs the simulator's truth table (truth.parquet beside LOGS, or "
            "--truth PATH); for a click log without one use --teacher features or openai"
        )
    scene = Path(cfg.scene) if cfg.scene else Path(cfg.logs).parent / scene_teacher.SCENE_FILE
    return scene_teacher.rationales(rows, scene_teacher.load_scene(scene), truth)


def _oracle(pairs: Any) -> dict[str, dict]:
    from creative4u.metrics import wilson_interval

    out = {}
    for split in SPLITS:
        sel = pairs[(pairs["split"] == split) & (pairs[TRUTH_COLUMN] != "")]
        if len(sel) == 0:
            continue
        winners = [json.loads(t)["winner"] for t in sel[TRUTH_COLUMN]]
        hits = int(sum(w == lab for w, lab in zip(winners, sel["label"], strict=True)))
        lo, hi = wilson_interval(hits, len(sel))
        out[split] = {"accuracy": hits / len(sel), "ci95": [lo, hi], "n": len(sel)}
    return out


def _generate(rows_file: str, images: dict[str, str], columns: tuple[str, ...]):
    """Yield dataset rows with the image files' bytes embedded (one pair in memory at a time)."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(rows_file).iter_batches(batch_size=256):
        for r in batch.to_pylist():
            row = {c: r[c] for c in columns if c not in ("image_a", "image_b")}
            for slot in ("image_a", "image_b"):
                path = images[r[slot]]
                with open(path, "rb") as fh:
                    row[slot] = {"bytes": fh.read(), "path": os.path.basename(r[slot])}
            yield row


def _write_dataset(
    table: Any,
    columns: list[str],
    images: dict[str, Path],
    out: Path,
    staging: Path,
    progress: bool = True,
) -> dict[str, int]:
    from datasets import Dataset, DatasetDict

    if not progress:
        from datasets.utils import disable_progress_bars, enable_progress_bars
        from datasets.utils.tqdm import are_progress_bars_disabled

        was_disabled = are_progress_bars_disabled()
        disable_progress_bars()
    feats = pair_features(columns)
    img_paths = {k: str(v) for k, v in images.items()}
    parts = {}
    names = [*SPLITS, *(["unlabelled"] if "unlabelled" in set(table["split"]) else [])]
    for name in names:
        sel = table[table["split"] == name]
        if len(sel) == 0:
            parts[name] = Dataset.from_dict({c: [] for c in columns}, features=feats)
            continue
        rows_file = staging / f"{name}.rows.parquet"
        sel.drop(columns=["split"]).to_parquet(rows_file, index=False)
        parts[name] = Dataset.from_generator(
            _generate,
            features=feats,
            cache_dir=str(staging / "hf"),
            # a tuple, not a list: datasets shards generators over list-valued kwargs
            gen_kwargs={
                "rows_file": str(rows_file),
                "images": img_paths,
                "columns": tuple(columns),
            },
            split=name,
        )
    dd = DatasetDict(parts)
    # an empty split still needs one (empty) shard on disk, or it cannot be loaded back
    dd.save_to_disk(str(out), num_shards={k: 1 for k, v in dd.items() if len(v) == 0})
    if not progress and not was_disabled:
        enable_progress_bars()
    return {k: len(v) for k, v in dd.items()}


def _clean(out: Path) -> None:
    for name in OUTPUTS:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for p in out.glob(".build-*"):  # staging a killed build left behind
        shutil.rmtree(p, ignore_errors=True)


def _output_dir(cfg: BuildConfig) -> Path:
    """OUT, if a build may write there: new, empty, an unfinished build (resumed), or --force."""
    from creative4u.paths import ensure_writable_dir
    from data.stages import STAGES_DIR

    out = Path(cfg.out)
    unfinished = (out / STAGES_DIR).is_dir() and not (out / "card.json").exists()
    return out if unfinished else ensure_writable_dir(out, cfg.force)


INGEST_VERSION = 1
"""Bump when ingestion's output changes for the same inputs (old stage results are then unused)."""


def _image_stamps(root: Path, names: list[str]) -> dict[str, Any]:
    from creative4u.paths import file_stamp

    return {n: (file_stamp(root / n) if (root / n).is_file() else None) for n in names}


def _ingest_stage(cfg: BuildConfig, con: Any, out: Path, staging: Path, store: Any) -> Any:
    """`data.ingest.ingest`, or its finished result for the same log files and image root.

    Reused only when every image the log names still has the size and modification time it had
    (a fixed or newly added image is re-checked), so the quarantine stays true to the files.
    """
    from dataclasses import asdict

    from creative4u.paths import file_stamp
    from data.ingest import IngestResult, ingest, resolve_inputs
    from data.stages import stage_key

    files, _ = resolve_inputs(cfg.logs)
    root = Path(cfg.images)
    key = stage_key(
        {"v": INGEST_VERSION, "logs": [file_stamp(f) for f in files], "images": str(root.resolve())}
    )
    done = store.finished("ingest", key)
    if done is not None:
        saved = json.loads((done / "result.json").read_text())
        if _image_stamps(root, list(saved["image_stamps"])) == saved["image_stamps"]:
            con.execute(
                "CREATE OR REPLACE TEMP VIEW valid AS SELECT * FROM "
                f"read_parquet('{(done / 'valid.parquet').as_posix()}')"
            )
            shutil.copyfile(done / "quarantine.parquet", out / "quarantine.parquet")
            fields = saved["result"]
            fields["images"] = {k: Path(v) for k, v in fields["images"].items()}
            return IngestResult(**fields)
    with store.write("ingest", key) as tmp:
        ing = ingest(con, cfg.logs, cfg.images, out / "quarantine.parquet", staging, cfg.progress)
        con.execute(f"COPY (SELECT * FROM valid) TO '{(tmp / 'valid.parquet').as_posix()}'")
        shutil.copyfile(out / "quarantine.parquet", tmp / "quarantine.parquet")
        bad = [r[0] for r in con.execute("SELECT image FROM bad_images").fetchall()]
        result = asdict(ing) | {"images": {k: str(v) for k, v in ing.images.items()}}
        (tmp / "result.json").write_text(
            json.dumps(
                {"result": result, "image_stamps": _image_stamps(root, sorted([*ing.images, *bad]))}
            )
        )
    return ing


def build(cfg: BuildConfig) -> dict[str, Any]:
    """Build the dataset into `cfg.out` and return the card's numbers."""
    import duckdb
    import numpy as np

    from data.aggregate import creative_query_ctr, write_impressions
    from data.baseline import feature_baseline, rationale_ceiling
    from data.card import write_card
    from data.featurize import features_table, measure_images
    from data.pairs import assign, label_pairs, mine_pairs, split_products
    from data.teachers import features as features_teacher
    from data.teachers import scene as scene_teacher

    if cfg.teacher == "openai" and not (cfg.teacher_url and cfg.teacher_model):
        raise ValueError("--teacher openai needs --teacher-url and --teacher-model")
    if not Path(cfg.images).is_dir():
        raise FileNotFoundError(f"image root not found: {cfg.images}")
    if cfg.memory_limit and not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", cfg.memory_limit, re.I):
        raise ValueError(f"--memory-limit {cfg.memory_limit!r}: give a size such as 512MB or 4GB")
    truth_file = _truth_path(cfg)
    from data.stages import STAGES_DIR, StageStore, clear_temporaries

    out = _output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)
    store = StageStore(out / STAGES_DIR)
    if not cfg.resume:
        store.drop()
    clear_temporaries(store.root)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=out))
    try:
        con = duckdb.connect(str(staging / "build.duckdb"))  # on disk: large aggregates spill
        con.execute(f"SET temp_directory = '{staging / 'spill'}'")
        # every output that needs an order has an ORDER BY: the others may stream
        con.execute("SET preserve_insertion_order = false")
        if cfg.memory_limit:
            con.execute(f"SET memory_limit = '{cfg.memory_limit}'")
        ing = _ingest_stage(cfg, con, out, staging, store)
        cq = creative_query_ctr(con, ing.context_columns)
        splits = split_products(
            sorted(cq["product_id"].unique()), cfg.val_frac, cfg.test_frac, cfg.seed
        )
        n_cells = write_impressions(con, ing.context_columns, splits, out / "impressions.parquet")
        con.close()

        mined = label_pairs(mine_pairs(cq), cfg.rule)
        table = assign(mined, splits, cfg.seed, cfg.keep_unlabelled)
        table["image_a"] = table["image_a"].astype(str)
        table["image_b"] = table["image_b"].astype(str)

        used = sorted(set(table["image_a"]) | set(table["image_b"]))
        feats = measure_images(
            {k: ing.images[k] for k in used},
            workers=cfg.workers,
            pool=cfg.measure_pool,
            ocr=cfg.ocr,
            progress=cfg.progress,
            cache_dir=Path(cfg.feature_cache) if cfg.feature_cache else store.root / "features",
        )
        features_table(feats).to_parquet(out / "features.parquet", index=False)

        rows = table.to_dict("records")
        truth_col = _truth_column(table, truth_file) if truth_file is not None else None
        teacher_card: dict[str, Any] = {"name": cfg.teacher}
        if cfg.teacher == "scene":
            rationales, source = _scene_rationales(cfg, rows, truth_col), scene_teacher.SOURCE
        else:
            rationales, source = features_teacher.rationales(rows, feats), features_teacher.SOURCE
        sources = [source if r["label"] else "" for r in rows]
        if cfg.teacher == "openai":
            from data.teachers.openai_teacher import OpenAITeacher, OpenAITeacherConfig

            teacher = OpenAITeacher(
                OpenAITeacherConfig(
                    url=cfg.teacher_url,  # type: ignore[arg-type]
                    model=cfg.teacher_model,  # type: ignore[arg-type]
                    cache_dir=Path(cfg.teacher_cache or out / "teacher_cache"),
                    api_key=cfg.teacher_api_key,
                    tries=cfg.teacher_tries,
                    temperature=cfg.teacher_temperature,
                    max_tokens=cfg.teacher_max_tokens,
                    workers=cfg.teacher_workers,
                    seed=cfg.seed,
                )
            )
            rationales, sources = teacher.run(
                rows, lambda k: ing.images[k], rationales, progress=cfg.progress
            )
            teacher_card.update(
                model=cfg.teacher_model,
                url=cfg.teacher_url,
                tries=cfg.teacher_tries,
                stats=teacher.stats.to_dict(),
                last_error=teacher.last_error,
            )
        table["rationale"] = rationales
        table["rationale_source"] = sources
        _check_rationales(table)

        columns = list(PAIR_COLUMNS)
        if "category" in table.columns:
            columns.append("category")
            table["category"] = table["category"].fillna("").astype(str)
        if truth_col is not None:
            table[TRUTH_COLUMN] = truth_col
            columns.append(TRUTH_COLUMN)
        table = table[[*columns, "split"]]
        for c in ("impressions_a", "impressions_b"):
            table[c] = table[c].astype(np.int64)
        written = _write_dataset(table, columns, ing.images, out, staging, cfg.progress)

        card = _card(cfg, ing, cq, splits, mined, table, written, n_cells, truth_file)
        card["teacher"] = teacher_card
        card["feature_baseline"], baseline_preds = feature_baseline(table, feats, cfg.seed)
        card["rationale_ceiling"] = rationale_ceiling(table, cfg.seed)
        # per-pair predictions, so evaluation scores the baseline on the pairs it evaluates
        baseline_preds.to_parquet(out / "feature_baseline.parquet", index=False)
        card["columns"] = columns
        write_card(card, out)
        return card
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_rationales(table: Any) -> None:
    """Every labelled pair's rationale parses well-formed and names its label (the contract
    training relies on); a violation is a bug, so it stops the build."""
    from creative4u.protocol import parse

    for r in table[table["label"] != ""].itertuples(index=False):
        v = parse(r.rationale)
        if not v.well_formed or v.winner != r.label:
            raise AssertionError(
                f"rationale of {r.pair_id} is not well-formed for {r.label}: {v.reason}"
            )


def _card(
    cfg: BuildConfig,
    ing: Any,
    cq: Any,
    splits: dict[str, str],
    mined: Any,
    table: Any,
    written: dict[str, int],
    n_cells: int,
    truth_file: Path | None,
) -> dict[str, Any]:
    split_card = {}
    for name in written:
        sel = table[table["split"] == name]
        labelled = sel[sel["label"] != ""]
        products = (
            sum(1 for s in splits.values() if s == name)
            if name in SPLITS
            else int(sel["product_id"].nunique())
        )
        split_card[name] = {
            "products": products,
            "products_with_pairs": int(sel["product_id"].nunique()),
            "pairs": int(len(sel)),
            "label_a": float((labelled["label"] == "A").mean()) if len(labelled) else None,
            "mean_confidence": float(labelled["label_confidence"].mean())
            if len(labelled)
            else None,
        }
    unlabelled_all = int((~mined["labelled"]).sum())
    card: dict[str, Any] = {
        "sources": {
            "logs": str(cfg.logs),
            "format": ing.source_format,
            "images": str(cfg.images),
            "truth": str(truth_file) if truth_file else None,
        },
        "seed": cfg.seed,
        "rule": {
            "name": cfg.rule.name,
            "description": cfg.rule.describe(),
            "params": cfg.rule.params(),
        },
        "rows": {
            "in": ing.rows_in,
            "kept": ing.rows_kept,
            "quarantined": ing.rows_quarantined,
            "add_up": ing.rows_in == ing.rows_kept + ing.rows_quarantined,
        },
        "quarantine": ing.by_reason,
        "impressions": {"rows": n_cells, "context_columns": ing.context_columns},
        "creatives": int(cq["creative_id"].nunique()),
        "products": len(splits),
        "pairs": {
            "mined": int(len(mined)),
            "labelled": int(mined["labelled"].sum()),
            "unlabelled": unlabelled_all,
            "unlabelled_withheld": (
                unlabelled_all - written.get("unlabelled", 0) if cfg.keep_unlabelled else 0
            ),
        },
        "splits": split_card,
        "rationale_sources": dict(
            sorted(Counter(s for s in table["rationale_source"] if s).items())
        ),
        "features": {"ocr": cfg.ocr},
    }
    if TRUTH_COLUMN in table.columns:
        card["oracle"] = _oracle(table)
        card["rationale_vs_truth"] = _rationale_agreement(table)
    return card


def _rationale_agreement(pairs: Any) -> dict[str, Any]:
    """How often each dimension's verdict in the rationale equals the simulator's true verdict:
    the share of reasoning steps a student would learn right, per dimension."""
    from creative4u.protocol import DIMENSION_IDS, parse

    sel = pairs[(pairs["label"] != "") & (pairs[TRUTH_COLUMN] != "")]
    hits = dict.fromkeys(DIMENSION_IDS, 0)
    for text, truth in zip(sel["rationale"], sel[TRUTH_COLUMN], strict=True):
        v, t = parse(text), json.loads(truth)["dimensions"]
        for d in DIMENSION_IDS:
            hits[d] += v.comparison(d) == t[d]
    n = len(sel)
    return {
        "n": n,
        "per_dimension": {d: (hits[d] / n if n else None) for d in DIMENSION_IDS},
        "mean": (sum(hits.values()) / (n * len(DIMENSION_IDS))) if n else None,
    }

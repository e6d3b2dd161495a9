"""`creative4u data build`: validation and quarantine, labelling rules, splits, the dataset on disk.

The worlds here are made in the test with PIL and numpy (known CTRs, known broken rows), so every
expectation is computed independently of the build from the raw log.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from creative4u.protocol import DIMENSION_IDS, parse
from creative4u.schema import PAIR_COLUMNS, SPLITS
from data.build import BuildConfig, build
from data.labelling import LabelRule, prob_greater

COLOURS = [(205, 35, 45), (35, 85, 200), (40, 150, 70), (240, 200, 30), (130, 60, 170)]


def draw_creative(rng: np.random.Generator, size: int = 96) -> Image.Image:
    bg = tuple(int(x) for x in rng.integers(180, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    c = COLOURS[int(rng.integers(len(COLOURS)))]
    s = int(rng.integers(size // 5, size // 2))
    x, y = (int(v) for v in rng.integers(0, size - s, 2))
    d.rectangle([x, y, x + s, y + s], fill=c)
    if rng.random() < 0.5:
        d.ellipse([5, 5, 25, 25], fill=(20, 20, 20))
    return img


def make_world(
    root: Path,
    products: int = 16,
    creatives: int = 4,
    queries: int = 2,
    seed: int = 0,
    truth: bool = True,
) -> dict[str, Path]:
    """Images, a click log (several context cells per creative and query) and a truth table."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True)
    rows, truth_rows = [], []
    for p in range(products):
        pid = f"p{p:03d}"
        for c in range(creatives):
            cid = f"{pid}_c{c}"
            draw_creative(rng).save(images / f"{cid}.png")
            base = float(np.exp(rng.normal(np.log(0.02), 0.6)))
            for q in range(queries):
                query = f"query {q} of {pid}"
                ctr = min(0.5, base * float(np.exp(rng.normal(0, 0.3))))
                low_traffic = rng.random() < 0.15
                for hour in range(4):
                    imps = int(rng.integers(30, 200) if low_traffic else rng.integers(250, 900))
                    rows.append(
                        {
                            "creative_id": cid,
                            "product_id": pid,
                            "image": f"{cid}.png",
                            "impressions": imps,
                            "clicks": int(rng.binomial(imps, ctr)),
                            "query": query,
                            "title": f"Brand red thing {pid}",
                            "category": ["shoes", "bags"][p % 2],
                            "hour": hour,
                            "position": int(rng.integers(1, 6)),
                        }
                    )
                truth_rows.append(
                    {
                        "creative_id": cid,
                        "product_id": pid,
                        "query": query,
                        "true_ctr": ctr,
                        **{d: float(rng.random()) for d in DIMENSION_IDS},
                    }
                )
    logs = pd.DataFrame(rows)
    logs.to_parquet(root / "logs.parquet", index=False)
    if truth:
        pd.DataFrame(truth_rows).to_parquet(root / "truth.parquet", index=False)
    return {"root": root, "images": images, "logs": root / "logs.parquet"}


def run_build(world: dict[str, Path], out: Path, **kw) -> dict:
    kw.setdefault("ocr", False)
    kw.setdefault("progress", False)
    cfg = BuildConfig(
        logs=str(kw.pop("logs", world["logs"])), images=str(world["images"]), out=str(out), **kw
    )
    return build(cfg)


def load(out: Path):
    from datasets import load_from_disk

    return load_from_disk(str(out))


def aggregates(logs: pd.DataFrame) -> pd.DataFrame:
    return logs.groupby(["creative_id", "query"])[["impressions", "clicks"]].sum()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def built(world: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("built") / "ds"
    card = run_build(world, out, keep_unlabelled=True, val_frac=0.2, test_frac=0.2)
    return out, card


# ---- the dataset on disk ----------------------------------------------------------------------


def test_dataset_loads_with_contract_columns(built: tuple[Path, dict]) -> None:
    out, card = built
    dd = load(out)
    assert set(dd) == {*SPLITS, "unlabelled"}
    for split in dd.values():
        assert split.column_names == [*PAIR_COLUMNS, "category", "truth"]
        assert split.features["image_a"].__class__.__name__ == "Image"
    for name in ("impressions.parquet", "quarantine.parquet", "README.md", "card.json"):
        assert (out / name).is_file()
    assert json.loads((out / "card.json").read_text())["splits"]["train"]["pairs"] == len(
        dd["train"]
    )


def test_dataset_is_self_contained(built: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = built
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    row = load(moved)["test"][0]
    a, b = row["image_a"], row["image_b"]
    assert a.size == (96, 96) and b.size == (96, 96)
    assert np.asarray(a.convert("RGB")).std() > 0  # real pixels, not a placeholder


def test_splits_are_product_disjoint(built: tuple[Path, dict]) -> None:
    out, _ = built
    dd = load(out)
    products = {s: set(dd[s]["product_id"]) for s in SPLITS}
    assert all(products[s] for s in SPLITS)
    for i, s in enumerate(SPLITS):
        for t in SPLITS[i + 1 :]:
            assert not products[s] & products[t], (s, t)
    # unlabelled pairs only come from training products
    assert set(dd["unlabelled"]["product_id"]) <= {
        p for p, s in _product_splits(out).items() if s == "train"
    }


def _product_splits(out: Path) -> dict[str, str]:
    imp = pd.read_parquet(out / "impressions.parquet")
    per = imp.groupby("product_id")["split"].unique()
    assert per.map(len).eq(1).all()  # one split per product in the impression table too
    return {p: s[0] for p, s in per.items()}


def test_labels_balanced_within_each_split(built: tuple[Path, dict]) -> None:
    out, _ = built
    dd = load(out)
    for s in SPLITS:
        labels = dd[s]["label"]
        assert len(labels) >= 10
        share = labels.count("A") / len(labels)
        assert 0.45 <= share <= 0.55, (s, share)
        assert set(labels) == {"A", "B"}


def test_every_rationale_parses_with_its_label(built: tuple[Path, dict]) -> None:
    out, _ = built
    dd = load(out)
    for s in SPLITS:
        for r in dd[s].select_columns(["rationale", "label", "rationale_source"]):
            v = parse(r["rationale"])
            assert v.well_formed, v.reason
            assert v.winner == r["label"]
            assert r["rationale_source"] == "features"
            assert len(v.dimensions) == len(DIMENSION_IDS)
    unl = dd["unlabelled"]
    assert len(unl) > 0 and set(unl["label"]) == {""} and set(unl["rationale"]) == {""}


def test_pairs_respect_creative4u_rule(world: dict[str, Path], built: tuple[Path, dict]) -> None:
    out, _ = built
    agg = aggregates(pd.read_parquet(world["logs"]))
    dd = load(out)
    for s in SPLITS:
        for r in dd[s].remove_columns(["image_a", "image_b"]):
            a = agg.loc[(r["creative_a"], r["query"])]
            b = agg.loc[(r["creative_b"], r["query"])]
            assert r["impressions_a"] == a["impressions"] > 1000
            assert r["impressions_b"] == b["impressions"] > 1000
            ca, cb = a["clicks"] / a["impressions"], b["clicks"] / b["impressions"]
            assert r["ctr_a"] == pytest.approx(ca) and r["ctr_b"] == pytest.approx(cb)
            hi, lo = max(ca, cb), min(ca, cb)
            assert lo == 0 or hi / lo - 1 > 0.6
            assert r["label"] == ("A" if ca > cb else "B")
            assert r["creative_a"] != r["creative_b"]
            assert r["product_id"] == r["creative_a"].split("_")[0] == r["creative_b"].split("_")[0]
    # and no pair that passes the rule was left unlabelled
    for r in dd["unlabelled"].remove_columns(["image_a", "image_b"]):
        ia, ib = r["impressions_a"], r["impressions_b"]
        hi, lo = max(r["ctr_a"], r["ctr_b"]), min(r["ctr_a"], r["ctr_b"])
        gap = math.inf if lo == 0 and hi > 0 else (hi / lo - 1 if lo > 0 else 0.0)
        assert not (ia > 1000 and ib > 1000 and gap > 0.6)


def test_bayes_rule_and_label_confidence(world: dict[str, Path], tmp_path: Path) -> None:
    card = run_build(
        world, tmp_path / "bayes", rule=LabelRule("bayes", min_impressions=500, threshold=0.9)
    )
    assert card["rule"]["name"] == "bayes"
    agg = aggregates(pd.read_parquet(world["logs"]))
    rng = np.random.default_rng(0)
    dd = load(tmp_path / "bayes")
    n = 0
    for s in SPLITS:
        for r in dd[s].remove_columns(["image_a", "image_b"]):
            a = agg.loc[(r["creative_a"], r["query"])]
            b = agg.loc[(r["creative_b"], r["query"])]
            # an independent Monte Carlo estimate of P(CTR_A > CTR_B)
            xa = rng.beta(1 + a["clicks"], 1 + a["impressions"] - a["clicks"], 200_000)
            xb = rng.beta(1 + b["clicks"], 1 + b["impressions"] - b["clicks"], 200_000)
            p_a = float((xa > xb).mean())
            p_label = p_a if r["label"] == "A" else 1 - p_a
            assert r["label_confidence"] == pytest.approx(p_label, abs=0.01)
            assert p_label >= 0.9 - 0.01
            assert a["impressions"] > 500 and b["impressions"] > 500
            n += 1
    assert n > 0
    assert 0.45 <= sum(dd[s]["label"].count("A") for s in SPLITS) / n <= 0.55


def test_prob_greater_matches_closed_form() -> None:
    from scipy.special import betaln

    def exact(ca: int, ia: int, cb: int, ib: int) -> float:
        # Evan Miller's closed form for P(p_B > p_A) with Beta(1 + c, 1 + n - c) posteriors
        aa, ba, ab, bb = 1 + ca, 1 + ia - ca, 1 + cb, 1 + ib - cb
        i = np.arange(ab)
        p_b = np.exp(betaln(aa + i, ba + bb) - np.log(bb + i) - betaln(1 + i, bb) - betaln(aa, ba))
        return 1 - float(p_b.sum())

    cases = [(10, 1000, 10, 1000), (30, 2000, 10, 2000), (0, 5000, 3, 5000), (5, 10, 400, 900)]
    cases += [(1, 1, 950, 1000), (200, 9000, 20, 300), (0, 0, 0, 0), (7, 1200, 90, 15000)]
    c = np.asarray(cases, dtype=float)
    got = prob_greater(c[:, 0], c[:, 1], c[:, 2], c[:, 3])
    for case, g in zip(cases, got, strict=True):
        assert g == pytest.approx(exact(*case), abs=1e-6), case
    assert got[0] == pytest.approx(0.5, abs=1e-9)  # same counts: a coin flip


def test_impression_table(world: dict[str, Path], built: tuple[Path, dict]) -> None:
    out, card = built
    imp = pd.read_parquet(out / "impressions.parquet")
    logs = pd.read_parquet(world["logs"])
    for c in ("creative_id", "product_id", "image", "query", "title", "category", "hour"):
        assert c in imp.columns
    assert {"impressions", "clicks", "ctr", "split"} <= set(imp.columns)
    assert imp["impressions"].sum() == logs["impressions"].sum()
    assert imp["clicks"].sum() == logs["clicks"].sum()
    assert (imp["ctr"] == imp["clicks"] / imp["impressions"]).all()
    assert card["impressions"]["rows"] == len(imp)
    # the impression table's product split is the dataset's
    splits = _product_splits(out)
    dd = load(out)
    for s in SPLITS:
        assert {splits[p] for p in dd[s]["product_id"]} == {s}


def test_truth_column_follows_pair_order(world: dict[str, Path], built: tuple[Path, dict]) -> None:
    out, card = built
    truth = pd.read_parquet(world["root"] / "truth.parquet").set_index(["creative_id", "query"])
    dd = load(out)
    hits = n = 0
    for r in dd["test"].remove_columns(["image_a", "image_b"]):
        t = json.loads(r["truth"])
        ta = truth.loc[(r["creative_a"], r["query"])]
        tb = truth.loc[(r["creative_b"], r["query"])]
        assert t["true_ctr_a"] == pytest.approx(ta["true_ctr"])
        assert t["winner"] == ("A" if ta["true_ctr"] >= tb["true_ctr"] else "B")
        for d in DIMENSION_IDS:
            diff = ta[d] - tb[d]
            assert t["dimensions"][d] == (
                "A=B" if abs(diff) < 0.05 else "A>B" if diff > 0 else "A<B"
            )
        hits += t["winner"] == r["label"]
        n += 1
    assert card["oracle"]["test"]["n"] == n
    assert card["oracle"]["test"]["accuracy"] == pytest.approx(hits / n)
    agree = card["rationale_vs_truth"]
    assert agree["n"] == sum(len(dd[s]) for s in SPLITS)
    assert set(agree["per_dimension"]) == set(DIMENSION_IDS)
    readme = (out / "README.md").read_text()
    assert "oracle" in readme and "feature baseline" in readme and "rationale ceiling" in readme
    rc = card["rationale_ceiling"]
    assert rc["n_test"] == len(dd["test"]) and 0.0 <= rc["accuracy"] <= 1.0
    b = card["feature_baseline"]
    assert b["n_test"] == len(dd["test"]) and 0.0 <= b["accuracy"] <= 1.0
    # its per-pair predictions cover validation and test, and give the card's accuracy
    preds = pd.read_parquet(out / "feature_baseline.parquet").set_index("pair_id")
    assert set(preds.index) == set(dd["validation"]["pair_id"]) | set(dd["test"]["pair_id"])
    assert preds["p_a"].between(0, 1).all()
    hits = sum((preds.loc[r["pair_id"], "p_a"] >= 0.5) == (r["label"] == "A") for r in dd["test"])
    assert hits / len(dd["test"]) == pytest.approx(b["accuracy"])


# ---- broken logs ------------------------------------------------------------------------------


def test_broken_rows_are_quarantined_with_reasons(world: dict[str, Path], tmp_path: Path) -> None:
    logs = pd.read_parquet(world["logs"])
    good = len(logs)
    bad = logs.iloc[:8].copy()
    bad["creative_id"] = [f"bad{i}" for i in range(8)]
    bad = bad.astype({"impressions": "float64", "clicks": "float64"})
    bad.loc[bad.index[0], ["impressions", "clicks"]] = [10, 11]  # clicks > impressions
    bad.loc[bad.index[1], "impressions"] = -5
    bad.loc[bad.index[2], "clicks"] = -1
    bad.loc[bad.index[3], "clicks"] = np.nan
    bad.loc[bad.index[4], "impressions"] = 12.5
    bad.loc[bad.index[5], "image"] = "nowhere.png"
    bad.loc[bad.index[6], "image"] = "corrupt.png"
    bad.loc[bad.index[7], "creative_id"] = None
    images = tmp_path / "images"
    shutil.copytree(world["images"], images)
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    broken = pd.concat([logs, bad], ignore_index=True)
    broken.to_parquet(tmp_path / "logs.parquet", index=False)
    out = tmp_path / "ds"
    card = build(
        BuildConfig(
            logs=str(tmp_path / "logs.parquet"),
            images=str(images),
            out=str(out),
            truth=None,
            ocr=False,
            progress=False,
        )
    )
    q = pd.read_parquet(out / "quarantine.parquet")
    got = dict(zip(q["creative_id"].fillna("<none>"), q["reason"], strict=True))
    assert got == {
        "bad0": "clicks > impressions",
        "bad1": "negative impressions",
        "bad2": "negative clicks",
        "bad3": "missing value",
        "bad4": "not an integer",
        "bad5": "image not found",
        "bad6": "image unreadable",
        "<none>": "missing value",
    }
    assert q.loc[q["reason"] == "image unreadable", "detail"].str.contains("corrupt").all()
    rows = card["rows"]
    assert rows == {"in": good + 8, "kept": good, "quarantined": 8, "add_up": True}
    assert sum(card["quarantine"].values()) == 8 and card["quarantine"]["missing value"] == 2
    assert "8 quarantined" in (out / "README.md").read_text()
    assert len(load(out)["train"]) > 0  # the rest was built
    assert "truth" not in load(out)["train"].column_names


def test_missing_column_is_a_clear_error(world: dict[str, Path], tmp_path: Path) -> None:
    logs = pd.read_parquet(world["logs"]).drop(columns=["clicks"])
    logs.to_parquet(tmp_path / "logs.parquet", index=False)
    with pytest.raises(ValueError, match="clicks"):
        run_build(world, tmp_path / "ds", logs=tmp_path / "logs.parquet")


def test_cli_reports_missing_column(world: dict[str, Path], tmp_path: Path, capsys) -> None:
    from creative4u.cli import main

    logs = pd.read_parquet(world["logs"]).drop(columns=["image"])
    logs.to_csv(tmp_path / "logs.csv", index=False)
    code = main(
        ["data", "build", "--logs", str(tmp_path / "logs.csv"), "--images", str(world["images"]),
         "--out", str(tmp_path / "ds"), "--no-ocr"]
    )  # fmt: skip
    assert code == 2
    assert "image" in capsys.readouterr().err


def test_malformed_csv_lines_are_quarantined(world: dict[str, Path], tmp_path: Path) -> None:
    logs = pd.read_parquet(world["logs"])
    text = logs.to_csv(index=False).splitlines()
    text.insert(5, "only,three,fields")
    (tmp_path / "logs.csv").write_text("\n".join(text) + "\n")
    card = run_build(world, tmp_path / "ds", logs=tmp_path / "logs.csv", truth=None)
    assert card["rows"] == {
        "in": len(logs) + 1,
        "kept": len(logs),
        "quarantined": 1,
        "add_up": True,
    }
    q = pd.read_parquet(tmp_path / "ds" / "quarantine.parquet")
    assert list(q["reason"]) == ["malformed csv line"] and "only,three,fields" in q["detail"][0]


def test_log_with_only_required_columns(world: dict[str, Path], tmp_path: Path) -> None:
    logs = pd.read_parquet(world["logs"])[
        ["creative_id", "product_id", "image", "impressions", "clicks"]
    ]
    logs.to_parquet(tmp_path / "logs.parquet", index=False)
    card = run_build(world, tmp_path / "ds", logs=tmp_path / "logs.parquet", truth=None)
    dd = load(tmp_path / "ds")
    assert dd["train"].column_names == list(PAIR_COLUMNS)  # no category, no truth
    assert set(dd["train"]["query"]) == {""} and set(dd["train"]["title"]) == {""}
    # without queries, CTR is summed over the whole log and pairs are mined per product
    agg = logs.groupby("creative_id")[["impressions", "clicks"]].sum()
    r = dd["train"][0]
    assert r["impressions_a"] == agg.loc[r["creative_a"], "impressions"]
    assert card["pairs"]["mined"] == 16 * 4 * 3 // 2
    imp = pd.read_parquet(tmp_path / "ds" / "impressions.parquet")
    assert list(imp.columns) == [
        "creative_id",
        "product_id",
        "image",
        "impressions",
        "clicks",
        "ctr",
        "split",
    ]
    assert len(imp) == 16 * 4


# ---- equivalences -----------------------------------------------------------------------------


def _frame(out: Path, split: str) -> pd.DataFrame:
    ds = load(out)[split].cast_column("image_a", _raw()).cast_column("image_b", _raw())
    df = ds.to_pandas()
    for c in ("image_a", "image_b"):
        df[c] = df[c].map(lambda v: v["bytes"])
    return df


def _raw():
    from datasets import Image

    return Image(decode=False)


def test_csv_and_parquet_give_the_same_dataset(world: dict[str, Path], tmp_path: Path) -> None:
    logs = pd.read_parquet(world["logs"])
    csv = tmp_path / "logs.csv"
    logs.to_csv(csv, index=False)
    truth = str(world["root"] / "truth.parquet")
    run_build(world, tmp_path / "from_parquet", truth=truth)
    card = run_build(world, tmp_path / "from_csv", logs=csv, truth=truth)
    assert card["sources"]["format"] == "csv"
    for s in SPLITS:
        pd.testing.assert_frame_equal(
            _frame(tmp_path / "from_parquet", s), _frame(tmp_path / "from_csv", s)
        )
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "from_parquet" / "impressions.parquet"),
        pd.read_parquet(tmp_path / "from_csv" / "impressions.parquet"),
    )


def test_deterministic_under_seed(world: dict[str, Path], tmp_path: Path) -> None:
    run_build(world, tmp_path / "a", seed=3)
    run_build(world, tmp_path / "b", seed=3)
    run_build(world, tmp_path / "c", seed=4)
    for s in SPLITS:
        pd.testing.assert_frame_equal(_frame(tmp_path / "a", s), _frame(tmp_path / "b", s))
    assert (
        json.loads((tmp_path / "a" / "card.json").read_text())["splits"]
        == json.loads((tmp_path / "b" / "card.json").read_text())["splits"]
    )
    assert _product_splits(tmp_path / "a") != _product_splits(tmp_path / "c")


def test_refuses_to_overwrite_without_force(world: dict[str, Path], tmp_path: Path) -> None:
    run_build(world, tmp_path / "ds")
    with pytest.raises(ValueError, match="--force"):
        run_build(world, tmp_path / "ds")
    card = run_build(world, tmp_path / "ds", force=True, val_frac=0.0, test_frac=0.0)
    assert "unlabelled" not in card["splits"] and "unlabelled" not in set(load(tmp_path / "ds"))
    dd = load(tmp_path / "ds")  # empty splits load too
    assert len(dd["validation"]) == len(dd["test"]) == 0 and len(dd["train"]) > 0
    assert dd["test"].column_names == dd["train"].column_names


# ---- a simulated world, end to end, with OCR ---------------------------------------------------


def test_build_on_a_simulated_world(tmp_path: Path) -> None:
    from creative4u.features import tesseract_available
    from data.sim.config import SimConfig
    from data.simulate import simulate

    if not tesseract_available():
        pytest.skip("tesseract is not installed")
    simulate(
        SimConfig(products=6, creatives=3, queries=2, seed=2, image_size=224),
        tmp_path / "w",
        progress=False,
    )
    card = build(
        BuildConfig(
            logs=str(tmp_path / "w" / "logs.parquet"),
            images=str(tmp_path / "w" / "images"),
            out=str(tmp_path / "ds"),
            val_frac=0.2,
            test_frac=0.2,
            progress=False,
        )
    )
    assert card["sources"]["truth"].endswith("truth.parquet")  # found beside the log
    assert card["features"]["ocr"] is True
    dd = load(tmp_path / "ds")
    assert sum(len(dd[s]) for s in SPLITS) == card["pairs"]["labelled"] > 0
    for s in SPLITS:
        for r in dd[s].select_columns(["rationale", "label", "truth"]):
            assert parse(r["rationale"]).winner == r["label"] and json.loads(r["truth"])["winner"]
    feats = pd.read_parquet(tmp_path / "ds" / "features.parquet")
    assert len(feats) == 6 * 3 and (feats["text_words"] > 0).any()  # OCR read some text


# ---- a killed build resumes at the stage that did not finish -----------------------------------


class Killed(Exception):
    """Stands in for the process being stopped in the middle of the teacher step."""


def test_killed_build_resumes_without_redoing_ingestion_or_measuring(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import creative4u.features
    import data.featurize
    import data.ingest
    from data.teachers import features as features_teacher

    calls = {"ingest": 0, "measure": 0, "ocr": 0}
    real_ingest, real_measure = data.ingest.ingest, data.featurize._measure_one
    real_ocr = creative4u.features.ocr_words

    def counted_ocr(*a, **k):
        calls["ocr"] += 1
        return real_ocr(*a, **k)

    def counted_ingest(*a, **k):
        calls["ingest"] += 1
        return real_ingest(*a, **k)

    def counted_measure(*a, **k):
        calls["measure"] += 1
        return real_measure(*a, **k)

    def killed(*a, **k):
        raise Killed

    monkeypatch.setattr(data.ingest, "ingest", counted_ingest)
    monkeypatch.setattr(data.featurize, "_measure_one", counted_measure)
    monkeypatch.setattr(creative4u.features, "ocr_words", counted_ocr)
    real_teacher = features_teacher.rationales
    monkeypatch.setattr(features_teacher, "rationales", killed)
    out = tmp_path / "ds"
    with pytest.raises(Killed):
        run_build(world, out, ocr=True)
    n_images = calls["measure"]  # every creative that is in a pair, measured (and OCR'd) once
    assert calls["ingest"] == 1 and 0 < n_images <= len(list(world["images"].iterdir()))
    assert calls["ocr"] == n_images
    assert not (out / "card.json").exists()

    monkeypatch.setattr(features_teacher, "rationales", real_teacher)
    card = run_build(world, out, ocr=True)  # the same command again: no --force for a resume
    assert calls == {"ingest": 1, "measure": n_images, "ocr": n_images}, "a stage was redone"
    fresh = run_build(world, tmp_path / "fresh", ocr=True, resume=False)
    assert card["rows"] == fresh["rows"] and card["splits"] == fresh["splits"]
    got, want = load(out)["train"], load(tmp_path / "fresh")["train"]
    assert got["pair_id"] == want["pair_id"] and got["rationale"] == want["rationale"]
    assert (out / "quarantine.parquet").is_file()

    # A finished build is not overwritten without --force; with it, a changed log is re-ingested
    with pytest.raises(ValueError, match="--force"):
        run_build(world, out)
    logs = pd.read_parquet(world["logs"]).iloc[:-4]
    changed = tmp_path / "logs.parquet"
    logs.to_parquet(changed, index=False)
    before = calls["ingest"]
    card2 = run_build(world, out, logs=changed, force=True)
    assert calls["ingest"] == before + 1 and card2["rows"]["in"] == len(logs)


def test_a_changed_image_is_checked_again_on_resume(world: dict[str, Path], tmp_path: Path) -> None:
    images = tmp_path / "images"
    shutil.copytree(world["images"], images)
    logs = pd.read_parquet(world["logs"])
    victim = logs["image"].iloc[0]
    (images / victim).write_bytes(b"not a png at all")
    w = {**world, "images": images}
    first = run_build(w, tmp_path / "ds")
    assert first["quarantine"].get("image unreadable", 0) > 0
    shutil.copyfile(world["images"] / victim, images / victim)  # the advertiser fixes the file
    again = run_build(w, tmp_path / "ds", force=True)
    assert "image unreadable" not in again["quarantine"]
    assert again["rows"]["kept"] == len(logs)


def test_extreme_shapes_in_a_click_log_are_fitted_and_broken_ones_quarantined(
    world: dict[str, Path], tmp_path: Path, tiny_model: Path
) -> None:
    from creative4u.images import prepare_image
    from creative4u.vlm import load_processor

    images = tmp_path / "images"
    shutil.copytree(world["images"], images)
    logs = pd.read_parquet(world["logs"])
    strip, broken = logs["image"].unique()[:2]
    Image.new("RGB", (12000, 20), (205, 35, 45)).save(images / strip)  # aspect ratio 600
    (images / broken).write_bytes((images / broken).read_bytes()[:40])  # truncated PNG
    card = run_build({**world, "images": images}, tmp_path / "ds")
    q = pd.read_parquet(tmp_path / "ds" / "quarantine.parquet")
    assert set(q["image"]) == {broken} and set(q["reason"]) == {"image unreadable"}
    assert q["detail"].str.contains(broken, regex=False).all()
    assert card["rows"]["kept"] == int((logs["image"] != broken).sum())
    processor = load_processor(str(tiny_model))
    dd = load(tmp_path / "ds")
    rows = [
        r
        for s in dd.values()
        for r in s
        if strip in (r["creative_a"] + ".png", r["creative_b"] + ".png")
    ]
    assert rows, "the 12000 x 20 creative should be in pairs"
    side = "image_a" if rows[0]["creative_a"] + ".png" == strip else "image_b"
    fitted = prepare_image(rows[0][side], processor)
    assert fitted.width % 28 == 0 and fitted.height % 28 == 0 and fitted.width > fitted.height
    assert fitted.width * fitted.height <= 112 * 112


def test_measuring_in_processes_gives_what_threads_give(world: dict[str, Path], tmp_path) -> None:
    """The worker processes measure exactly what the thread pool measures, and a second run
    reads the content cache instead of measuring again."""
    from data.featurize import measure_images

    images = {p.name: p for p in sorted(world["images"].glob("*.png"))[:6]}
    threads = measure_images(images, workers=2, progress=False, pool="thread")
    cache = tmp_path / "cache"
    procs = measure_images(images, workers=2, progress=False, cache_dir=cache, pool="process")
    assert procs == threads and list(procs) == sorted(images)
    entries = sorted(cache.iterdir())
    assert len(entries) == len(images)
    stamps = [e.stat().st_mtime_ns for e in entries]
    again = measure_images(images, workers=2, progress=False, cache_dir=cache, pool="process")
    assert again == threads and [e.stat().st_mtime_ns for e in entries] == stamps
    with pytest.raises(ValueError, match="pool must be"):
        measure_images(images, pool="fork")


def test_cells_summed_by_a_warehouse_give_the_same_dataset(
    world: dict[str, Path], tmp_path: Path
) -> None:
    """A raw log (each cell spread over three partitions, two broken rows among them) and the CTR
    cells `data warehouse-sql` sums it into (run here on DuckDB, as a warehouse would run it)
    build the same pairs and the same impression table; the broken rows are quarantined from the
    raw log and counted by the query's companion in the warehouse."""
    import duckdb

    from creative4u.schema import LOG_CONTEXT
    from data.warehouse import ctr_cells_sql, valid_row_sql

    cells = pd.read_parquet(world["logs"])
    parts = []
    for k in range(3):  # impressions and clicks split three ways, clicks <= impressions in each
        part = cells.copy()
        part["impressions"] = cells["impressions"] // 3 + (k < cells["impressions"] % 3)
        part["clicks"] = cells["clicks"] // 3 + (k < cells["clicks"] % 3)
        parts.append(part)
    broken = cells.head(2).copy()
    broken["clicks"] = broken["impressions"] + 1
    broken.loc[broken.index[1], "impressions"] = -5
    raw = pd.concat([*parts, broken], ignore_index=True).sample(frac=1.0, random_state=0)
    raw.to_parquet(tmp_path / "raw.parquet", index=False)

    context = [c for c in LOG_CONTEXT if c in raw.columns]
    con = duckdb.connect()
    con.execute(f"CREATE VIEW click_log AS SELECT * FROM '{tmp_path / 'raw.parquet'}'")
    con.execute(
        f"COPY ({ctr_cells_sql(context)}) TO '{tmp_path / 'cells.parquet'}' (FORMAT parquet)"
    )
    left_out = con.execute(
        f"SELECT COUNT(*) FROM click_log WHERE NOT ({valid_row_sql()})"
    ).fetchone()
    assert left_out[0] == 2

    truth = str(world["root"] / "truth.parquet")
    from_raw = run_build(world, tmp_path / "from_raw", logs=tmp_path / "raw.parquet", truth=truth)
    from_cells = run_build(
        world, tmp_path / "from_cells", logs=tmp_path / "cells.parquet", truth=truth
    )
    assert from_raw["rows"]["in"] == 3 * len(cells) + 2 and from_raw["rows"]["quarantined"] == 2
    assert from_cells["rows"]["in"] == len(cells) and from_cells["rows"]["quarantined"] == 0
    for s in SPLITS:
        pd.testing.assert_frame_equal(
            _frame(tmp_path / "from_raw", s), _frame(tmp_path / "from_cells", s)
        )
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "from_raw" / "impressions.parquet"),
        pd.read_parquet(tmp_path / "from_cells" / "impressions.parquet"),
    )
    assert from_raw["feature_baseline"] == from_cells["feature_baseline"]


def test_memory_limit_is_checked_before_reading(world: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--memory-limit 'lots'"):
        run_build(world, tmp_path / "ds", memory_limit="lots")
    card = run_build(world, tmp_path / "ok", memory_limit="256MB")
    assert card["rows"]["kept"] == len(pd.read_parquet(world["logs"]))

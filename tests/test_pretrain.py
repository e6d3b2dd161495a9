"""Perception pretraining: a corpus without clicks, `model pretrain` from its recipe (and resumed),
and the shipped base, which must load like any checkpoint and match what `model init` builds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from creative4u.perception import FACTORS

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "small-base"
pytestmark = pytest.mark.slow

# What a corpus example may carry: the prompt, the answer, the images and the design factors
# they were written from. Nothing measured from users.
CORPUS_COLUMNS = {
    "example_id",
    "task",
    "prompt",
    "completion",
    "images",
    "creative_ids",
    "factors",
    "query",
    "query_word",
    "title",
    "title_colour",
}


def run(args: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    return res.stdout + res.stderr


def test_corpus_is_built_without_clicks(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    # build in a fresh interpreter and report which simulator modules the build imported
    script = (
        "import sys, json\n"
        "from data.pretrain_corpus import CorpusConfig, build_corpus\n"
        "from creative4u.images import processor_pixel_bounds\n"
        "from creative4u.vlm import load_processor\n"
        f"cfg = CorpusConfig(train_seeds=[101, 102], products=6, heldout_products=3,"
        f" train_examples=120, heldout_examples=30)\n"
        f"build_corpus({str(out)!r}, cfg, processor_pixel_bounds(load_processor({str(tiny_model)!r})),"
        " progress=False)\n"
        "print('MODULES', json.dumps(sorted(m for m in sys.modules if m.startswith('data.'))))\n"
    )
    log = run([sys.executable, "-c", script])
    modules = json.loads(next(x for x in log.splitlines() if x.startswith("MODULES "))[8:])
    assert "data.sim.render" in modules and "data.sim.world" in modules
    assert "data.sim.clicks" not in modules and "data.sim.truth" not in modules

    from datasets import load_from_disk

    ds = load_from_disk(str(out))
    assert set(ds) == {"train", "heldout"}
    for split, seeds in (("train", {"w101", "w102"}), ("heldout", {"w201"})):
        rows = ds[split]
        assert set(rows.column_names) == CORPUS_COLUMNS
        assert {cid.split("_")[0] for ids in rows["creative_ids"] for cid in ids} <= seeds
        for row in rows.select(range(20)):
            factors = json.loads(row["factors"])
            assert all(set(f) == set(FACTORS) for f in factors)
            assert len(factors) == len(row["images"]) == len(row["creative_ids"])
            answer = row["completion"][0]["content"].lower()
            assert not any(w in answer for w in ("ctr", "click", "impression", "label"))
            assert all(img.size == (56, 56) for img in row["images"])  # the tiny model's pixels
    info = json.loads((out / "corpus.json").read_text())
    assert info["creatives"] == {"train": 72, "heldout": 18}
    assert sum(info["tasks"]["train"].values()) == 120


def test_model_pretrain_builds_trains_scores_and_resumes(tmp_path: Path) -> None:
    init, corpus, out = tmp_path / "init", tmp_path / "corpus", tmp_path / "out"
    cmd = [sys.executable, "-m", "creative4u", "model", "pretrain"]
    cmd += ["--config", "recipes/tiny/pretrain.yaml", "--model_name_or_path", str(init)]
    cmd += ["--corpus_path", str(corpus), "--output_dir", str(out)]
    log = run(cmd)
    assert "model init" in log and "pretrain-corpus" in log  # it built what was missing
    card = json.loads((out / "creative4u_run.json").read_text())
    assert card["stage"] == "pretrain" and card["global_step"] == 4
    assert card["heldout"]["n"] == 16 and "colour" in card["heldout"]["by_field"]
    assert card["vision_stage"]["steps"] == 3 and set(
        card["vision_stage"]["heldout_accuracy"]
    ) == set(FACTORS)
    matching = card["word_matching"]  # stage three ran on stage two's weights
    assert matching["steps"] == 2 and [c["step"] for c in matching["curve"]] == [0, 2]
    curve = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [c["step"] for c in curve] == [2, 4]
    readme = (out / "README.md").read_text()
    assert "Held-out accuracy" in readme and "| colour |" in readme
    from creative4u.vlm import load

    load(str(out))

    # run again with a longer schedule: nothing is rebuilt, training resumes from step 4
    log = run([*cmd, "--max_steps", "6"])
    assert "model init" not in log and "pretrain-corpus" not in log
    assert "resuming from" in log and "checkpoint-4" in log
    resumed = json.loads((out / "creative4u_run.json").read_text())
    assert resumed["global_step"] == 6
    assert "vision stage" not in log and resumed["vision_stage"] == card["vision_stage"]

    # a fresh run in the same folder (no checkpoint left) keeps nothing of the older run
    for ckpt in out.glob("checkpoint-*"):
        shutil.rmtree(ckpt)
    run([*cmd, "--vision_steps", "0", "--max_steps", "2", "--match_steps", "0"])
    fresh = json.loads((out / "creative4u_run.json").read_text())
    assert fresh["global_step"] == 2 and fresh["vision_stage"] is None
    assert fresh["word_matching"] is None
    curve = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [c["step"] for c in curve] == [2]

    # a recipe that adds stage three to a finished stage two runs only stage three, on its weights
    for ckpt in out.glob("checkpoint-*"):
        shutil.rmtree(ckpt)
    weights = (out / "model.safetensors").read_bytes()
    log = run([*cmd, "--vision_steps", "0", "--max_steps", "2", "--match_steps", "3"])
    assert "stage two already finished" in log and "resuming from" not in log
    added = json.loads((out / "creative4u_run.json").read_text())
    assert added["global_step"] == 2 and added["word_matching"]["steps"] == 3
    assert added["word_matching"]["forms"] == ["protocol", "question", "comparison"]
    assert {"marks", "question", "comparison"} <= set(added["word_matching"]["heldout"])
    assert (out / "model.safetensors").read_bytes() != weights  # stage three trained them
    card_text = (out / "README.md").read_text()
    assert "stage three: word matching" in card_text and "question" in card_text
    # another stage three (here: its lines in other forms) cannot be taken out of those
    # weights: stage two runs again
    log = run(
        [*cmd, "--vision_steps", "0", "--max_steps", "2", "--match_steps", "3"]
        + ["--match_forms", "protocol"]
    )
    assert "stage two already finished" not in log
    again = json.loads((out / "creative4u_run.json").read_text())["word_matching"]
    assert again["forms"] == ["protocol"]

    # a second phase (the product form after the protocol's lines) is another stage three too
    log = run(
        [*cmd, "--vision_steps", "0", "--max_steps", "2", "--match_steps", "3"]
        + ["--match_forms", "protocol", "--match_then_steps", "2"]
        + ["--match_then_forms", "protocol", "product"]
    )
    assert "stage two already finished" not in log
    phased = json.loads((out / "creative4u_run.json").read_text())["word_matching"]
    assert phased["forms"] == ["protocol"] and phased["steps"] == 3
    assert phased["then"]["forms"] == ["protocol", "product"] and phased["then"]["steps"] == 2
    assert {"marks", "product"} <= set(phased["then"]["heldout"])
    assert "| stage three, then | 2 steps" in (out / "README.md").read_text()


def test_shipped_base_matches_model_init(tmp_path: Path) -> None:
    """A change to the lexicon, the protocol text or the presets changes what `model init`
    builds; the shipped base must then be rebuilt, not silently drift away from it."""
    from creative4u.model_factory import build

    fresh = build(tmp_path / "fresh", preset="small")
    for name in ("chat_template.jinja", "processor_config.json"):
        assert (SHIPPED / name).read_text() == (fresh / name).read_text(), name
    # the vocabulary, merges and special tokens (not the padding state a trainer leaves behind)
    ours, theirs = (json.loads((p / "tokenizer.json").read_text()) for p in (SHIPPED, fresh))
    for key in ("model", "added_tokens", "pre_tokenizer", "decoder", "normalizer"):
        assert ours[key] == theirs[key], key
    ours, theirs = (json.loads((p / "tokenizer_config.json").read_text()) for p in (SHIPPED, fresh))
    for key in ("eos_token", "pad_token", "extra_special_tokens", "model_max_length"):
        assert ours.get(key) == theirs.get(key), key
    ours, theirs = (json.loads((p / "config.json").read_text()) for p in (SHIPPED, fresh))
    for key in ("text_config", "vision_config"):
        for k in set(ours[key]) | set(theirs[key]):
            if k not in ("dtype", "torch_dtype", "use_cache"):
                assert ours[key].get(k) == theirs[key].get(k), (key, k)
    card = json.loads((SHIPPED / "creative4u_run.json").read_text())
    assert card["stage"] == "pretrain" and card["heldout"]["by_field"]
    assert 0 not in card["corpus"]["config"]["train_seeds"]  # never the demo's world


def test_shipped_base_sees_and_loads_in_vllm(tmp_path: Path) -> None:
    from datasets import load_from_disk

    from creative4u.images import processor_pixel_bounds
    from creative4u.perception import evaluate
    from creative4u.vlm import load
    from data.pretrain_corpus import CorpusConfig, build_corpus

    model, processor = load(str(SHIPPED))

    held = tmp_path / "corpus"
    # a world neither the base nor its card's held-out set saw
    cfg = CorpusConfig(
        train_seeds=[301], heldout_seed=302, products=2, heldout_products=40,
        train_examples=1, heldout_examples=96,
    )  # fmt: skip
    build_corpus(held, cfg, processor_pixel_bounds(processor), progress=False)
    report = evaluate(model, processor, load_from_disk(str(held))["heldout"], max_examples=96)
    fields = report["by_field"]
    assert fields["colour"]["accuracy"] >= 0.9, fields  # it sees, far above chance (0.1)
    assert fields["title word"]["accuracy"] >= 0.9, fields  # and copies from its prompt

    two = next(r for r in load_from_disk(str(held))["heldout"] if len(r["images"]) == 2)
    paths = [tmp_path / f"{side}.png" for side in "ab"]
    for path, img in zip(paths, two["images"], strict=True):
        img.save(path)
    out = tmp_path / "vllm.json"
    run(
        [sys.executable, "tests/scripts/vllm_generate.py", str(SHIPPED), *map(str, paths), str(out)]
    )
    assert json.loads(out.read_text())["base"][0]["generated_tokens"] > 0


def test_stage_three_phases_are_checked_and_recorded() -> None:
    """Unknown forms fail when the recipe is read, not after stage two; a card's record of a
    two-phase stage three reads back as the recipe that made it, so a rerun does not redo it."""
    from pretrain.train import PretrainScriptArguments, stage_three

    with pytest.raises(ValueError, match="match_then_forms: unknown form"):
        PretrainScriptArguments(match_steps=3, match_then_steps=2, match_then_forms=["produce"])
    with pytest.raises(ValueError, match="needs match_then_forms"):
        PretrainScriptArguments(match_steps=3, match_then_steps=2)
    args = PretrainScriptArguments(
        match_steps=3,
        match_forms=["protocol"],
        match_then_steps=2,
        match_then_forms=["protocol", "product"],
    )
    record = {
        "steps": 3,
        "forms": ["protocol"],
        "rehearsal_batch_size": args.match_rehearsal_batch_size,
        "then": {"steps": 2, "forms": ["protocol", "product"]},
    }
    assert stage_three(args) == stage_three(record)
    assert stage_three(args) != stage_three({**record, "then": None})
    assert stage_three({**record, "then": None})[3] is None  # type: ignore[index]

"""Reason-to-Select GRPO: sample protocol answers, reward them, keep the best policy on validation.

Rewards are registered by name in `rl.rewards` and weighted in the recipe (`reward_funcs`,
`reward_weights`). The `m2fn` reward reads M2FN's P(A > B) for each pair and order, computed once
before training. Every `validation_steps` the policy is scored greedily on validation pairs; the
best policy seen (the starting SFT policy included) is what the run ships, so a collapsed policy
never is.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from creative4u.training import ModelArguments, PairDataArguments

logger = logging.getLogger("creative4u.rl")


@dataclass
class GRPOScriptArguments(PairDataArguments):
    """The data and reward block of a GRPO recipe."""

    reward_funcs: list[str] = field(
        default_factory=lambda: ["format", "correct"],
        metadata={"help": "names registered in rl.rewards"},
    )
    format_partial_credit: float = field(
        default=0.0, metadata={"help": "format reward for a readable answer in a broken frame"}
    )
    m2fn_checkpoint: str | None = field(
        default=None, metadata={"help": "M2FN checkpoint for the m2fn reward"}
    )
    include_unlabelled: bool = field(
        default=False,
        metadata={"help": "also train on the `unlabelled` split (rewarded by M2FN alone)"},
    )
    validation_steps: int = field(
        default=50, metadata={"help": "score the policy on validation every N steps"}
    )
    hard_pairs: int = field(
        default=0,
        metadata={
            "help": "before training, answer this many training pairs (both orders, greedily) with "
            "the starting policy and train only on the pairs it gets wrong in either order; 0: "
            "train on every pair"
        },
    )


def with_m2fn_preferences(
    ds: Any, splits: list[Any], checkpoint: str, batch_size: int = 256
) -> Any:
    """Add `m2fn_p_a` to formatted examples: M2FN's P(A > B) in the order each one is shown
    (1 - P for a swapped example). `splits` are the CreativePair splits `ds` was made from; M2FN
    scores their stored images, the pixels it was trained on, not the copies fitted to the VLM."""
    from creative4u.m2fn import load as load_m2fn

    ids = ds["pair_id"]
    wanted = set(ids)
    prefs = load_m2fn(checkpoint).prefer_pairs(splits, wanted, batch_size)
    missing = sorted(wanted - set(prefs))
    if missing:
        raise ValueError(f"no CreativePair row for {len(missing)} pair ids, e.g. {missing[0]!r}")
    probs = [1.0 - prefs[i] if s else prefs[i] for i, s in zip(ids, ds["swapped"], strict=True)]
    return ds.add_column("m2fn_p_a", probs)


def with_reference_verdicts(ds: Any, splits: list[Any]) -> Any:
    """Add `reference_verdicts` to formatted examples: the Q3-Q9 verdicts of each pair's
    CreativePair rationale in the order the example shows it, space-separated ("" where the pair
    has no well-formed rationale), for the `dimensions` reward."""
    from creative4u.protocol import DIMENSION_IDS, parse

    wanted = set(ds["pair_id"])
    refs: dict[str, Any] = {}
    for split in splits:
        for pid, text in zip(split["pair_id"], split["rationale"], strict=True):
            if pid in wanted:
                refs[pid] = parse(text)
    out = []
    for pid, swapped in zip(ds["pair_id"], ds["swapped"], strict=True):
        v = refs.get(pid)
        if v is None or not v.well_formed:
            out.append("")
            continue
        v = v.swapped() if swapped else v
        out.append(" ".join(v.comparison(d) or "" for d in DIMENSION_IDS))
    return ds.add_column("reference_verdicts", out)


HARD_PAIRS = "creative4u_hard_pairs.json"


def wrong_in_an_order(records: list[dict[str, Any]], pair_ids: list[str]) -> list[str]:
    """Ids of the pairs (selection records, `pair` indexing `pair_ids`) whose answer is malformed
    or names the wrong creative in at least one order, each order read in its own labels."""
    from creative4u.metrics import per_order_records

    wrong = {
        o["pair"]
        for o in per_order_records(records)
        if not o["well_formed"] or o["winner"] != o["label"]
    }
    return [pair_ids[i] for i in sorted(wrong)]


def mine_hard_pairs(
    model: Any,
    processor: Any,
    split: Any,
    n: int,
    max_new_tokens: int,
    seed: int,
    out: Path,
) -> dict[str, Any]:
    """The training pairs the starting policy answers wrong in at least one order.

    A group of completions that all earn the same reward has no advantage and teaches GRPO
    nothing; on a policy that is right most of the time most groups are such, so the few prompts
    a CPU budget affords are spent where the policy still errs (the rejection-sampled GRPO of
    UnifiedReward-Think). `n` pairs, drawn with `seed`, go through the same selector validation
    uses; the result (ids, the share found, the seconds) is written to `out`, so a resumed run
    trains on the same pairs instead of mining again.
    """
    import time

    from creative4u.validation import model_selector, selection_records

    path = out / HARD_PAIRS
    if path.is_file():
        return json.loads(path.read_text())
    t0 = time.time()
    rows = split.shuffle(seed=seed).select(range(min(n, len(split))))
    selector = model_selector(model, processor, max_new_tokens)
    hard = wrong_in_an_order(selection_records(selector, rows), rows["pair_id"])
    mined = {
        "scored_pairs": len(rows),
        "hard_pair_ids": hard,
        "seconds": round(time.time() - t0, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mined, indent=2) + "\n")
    return mined


class BestOnValidation:
    """Trainer callback: score the policy on validation pairs and keep the best one on disk.

    Every rank scores (generation under ZeRO-3 needs every rank's shard), but the choice is made
    once: whether a score is the best so far is the main process's decision, broadcast to the
    others (`main_process_says`), so a rank whose kernels rounded a near-tie the other way still
    joins `trainer.save_model`, which gathers sharded (ZeRO-3) weights and writes on the main
    process only. The best score, its step and the curve are kept next to the weights (`STATE`),
    so a resumed run goes on from its best so far instead of forgetting it.
    """

    STATE = "creative4u_best.json"

    def __init__(
        self,
        processor: Any,
        split: Any,
        out: Path,
        every: int,
        max_pairs: int,
        max_new_tokens: int,
        budget: Any = None,
    ):
        from transformers import TrainerCallback

        self.processor, self.split, self.out = processor, split, out
        self.every, self.max_pairs, self.max_new_tokens = every, max_pairs, max_new_tokens
        self.budget = budget
        self.best: tuple[float, float] | None = None
        self.best_step = -1
        self.curve: list[dict[str, Any]] = []
        self.trainer: Any = None
        parent = self

        class _CB(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kw):
                if not parent.curve or parent.curve[-1]["step"] != state.global_step:
                    parent.score(model, state.global_step, state.is_world_process_zero)

            def on_step_end(self, args, state, control, model=None, **kw):
                if state.global_step % parent.every == 0:
                    parent.score(model, state.global_step, state.is_world_process_zero)

            def on_train_end(self, args, state, control, model=None, **kw):
                if not parent.curve or parent.curve[-1]["step"] != state.global_step:
                    parent.score(model, state.global_step, state.is_world_process_zero)

        self.callback = _CB()

    def resume(self) -> None:
        """Take up the best policy a killed run had kept (its score, step and curve)."""
        path = self.out / self.STATE
        if path.is_file():
            saved = json.loads(path.read_text())
            self.best = tuple(saved["best"])  # type: ignore[assignment]
            self.best_step, self.curve = saved["best_step"], saved["curve"]
            logger.info("resuming with the best policy of step %d: %s", self.best_step, self.best)

    def score(self, model: Any, step: int, is_main: bool = True) -> None:
        import time

        from creative4u.training import main_process_says
        from creative4u.validation import validation_accuracy

        t0 = time.time()
        m = validation_accuracy(
            model, self.processor, self.split, self.max_pairs, self.max_new_tokens
        )
        key = (m.get("accuracy", 0.0), m.get("well_formed_rate", 0.0))
        self.curve.append({"step": step, **m})
        if is_main:
            logger.info(
                "validation at step %d: accuracy %.3f, well-formed %.3f", step, key[0], key[1]
            )
        if main_process_says(self.best is None or key > self.best):
            self.best, self.best_step = key, step
            if self.trainer is not None:
                self.trainer.save_model(str(self.out))
            elif is_main:
                model.save_pretrained(self.out)
            if is_main:
                self.processor.save_pretrained(self.out)
        if is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            state = {"best": list(self.best), "best_step": self.best_step, "curve": self.curve}
            (self.out / self.STATE).write_text(json.dumps(state, indent=2) + "\n")
        if self.budget is not None:
            self.budget.excluded += time.time() - t0  # validation is not training time


def main(script_args: GRPOScriptArguments, training_args, model_args: ModelArguments) -> Path:
    import time

    from datasets import concatenate_datasets
    from trl import GRPOTrainer

    from creative4u.training import (
        format_pairs,
        last_checkpoint,
        peft_config_for,
        prepare_run,
        resumable,
        save_run_card,
        time_budget_callback,
    )
    from rl.rewards import get_rewards

    model, processor, pairs, train = prepare_run(
        script_args, training_args, model_args, with_completion=False
    )
    sources = [pairs[script_args.train_split]]
    if script_args.include_unlabelled and "unlabelled" in pairs:
        extra = format_pairs(
            pairs["unlabelled"],
            processor,
            swap_augmentation=False,
            with_completion=False,
            progress=training_args.should_log,
        )
        train = concatenate_datasets([train, extra]).shuffle(seed=training_args.seed)
        sources.append(pairs["unlabelled"])
    out = Path(training_args.output_dir)
    mined = None
    if script_args.hard_pairs > 0:
        stale = out / HARD_PAIRS
        if last_checkpoint(out) is None and stale.is_file() and training_args.should_save:
            stale.unlink()  # a fresh run mines its own starting policy's errors
        # the main process mines and writes the list; the other ranks read that list
        in_train = set(train["pair_id"])  # `max_train_pairs` may have taken a subset
        source = pairs[script_args.train_split].filter(
            lambda pid: pid in in_train, input_columns="pair_id"
        )
        with training_args.main_process_first(desc="mining hard pairs"):
            mined = mine_hard_pairs(
                model,
                processor,
                source,
                script_args.hard_pairs,
                training_args.max_completion_length or 256,
                training_args.seed,
                out,
            )
        hard = set(mined["hard_pair_ids"])
        logger.info(
            "hard pairs: %d of %d scored (%.1f %%) in %.0f s",
            len(hard),
            mined["scored_pairs"],
            100 * len(hard) / max(1, mined["scored_pairs"]),
            mined["seconds"],
        )
        if not hard:
            raise ValueError(
                f"the starting policy answered all {mined['scored_pairs']} mined pairs right in "
                "both orders: raise hard_pairs or set it to 0 to train on every pair"
            )
        train = train.filter(lambda pid: pid in hard, input_columns="pair_id")
    if "m2fn" in script_args.reward_funcs:
        if not script_args.m2fn_checkpoint:
            raise ValueError("reward 'm2fn' needs m2fn_checkpoint in the recipe")
        train = with_m2fn_preferences(train, sources, script_args.m2fn_checkpoint)
    if "dimensions" in script_args.reward_funcs:
        train = with_reference_verdicts(train, sources)

    budget = time_budget_callback(script_args.max_train_seconds)
    best = BestOnValidation(
        processor,
        pairs[script_args.eval_split],
        out / "best",
        every=script_args.validation_steps,
        max_pairs=script_args.max_eval_pairs or 32,
        max_new_tokens=training_args.max_completion_length or 256,
        budget=budget,
    )
    trainer = resumable(GRPOTrainer)(
        model=model,
        reward_funcs=get_rewards(
            script_args.reward_funcs, format_partial_credit=script_args.format_partial_credit
        ),
        args=training_args,
        train_dataset=train,
        processing_class=processor,
        peft_config=peft_config_for(model_args),
        callbacks=[best.callback, budget],
    )
    best.trainer = trainer
    last = last_checkpoint(out)
    if last:
        logger.info("resuming from %s", last)
        best.resume()
    elif (out / "best").exists() and trainer.is_world_process_zero():
        shutil.rmtree(out / "best")  # a fresh run: an old run's best is not this run's
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=last)
    train_s = time.time() - t0

    # ship the best policy seen on validation (the starting one included)
    if not trainer.is_world_process_zero():
        return out
    shutil.copytree(out / "best", out, dirs_exist_ok=True)
    save_run_card(
        out,
        {
            "stage": "grpo",
            "base_model": model_args.model_name_or_path,
            "start_adapter": model_args.adapter_path,
            "finetune": model_args.finetune,
            "dataset": script_args.dataset_path,
            "rewards": dict(
                zip(
                    script_args.reward_funcs,
                    training_args.reward_weights or [1.0] * len(script_args.reward_funcs),
                    strict=True,
                )
            ),
            "train_seconds": round(train_s, 1),
            "hard_pairs": mined,
            "global_step": result.global_step,
            "best_step": best.best_step,
            "validation_curve": best.curve,
        },
    )
    return out

"""Perception pretraining of a from-scratch base (TRL `SFTTrainer` on the perception corpus).

On GPUs the selector starts from Qwen2.5-VL, which already sees and reads; the CPU models start
from random weights, so this stage gives them what a pretrained VLM brings: naming each design
factor of a creative, copying the query's and the title's words, and describing and comparing two
creatives in the protocol's layout. It never sees clicks (the corpus has none). The result is a
normal model folder with a card of held-out scores per task and factor, which later stages load
like any checkpoint.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from creative4u.training import RUN_CARD, ModelArguments, save_run_card

logger = logging.getLogger("creative4u.pretrain")


@dataclass
class PretrainScriptArguments:
    """The corpus block of a pretrain recipe: where the corpus is, how to build it if it is not
    there yet (`creative4u model pretrain` does), and how the result is scored."""

    corpus_path: str = field(default="runs/pretrain/corpus", metadata={"help": "corpus folder"})
    init_preset: str = field(
        default="small",
        metadata={"help": "`model pretrain` builds model_name_or_path with this preset if missing"},
    )
    train_seeds: list[int] = field(
        default_factory=lambda: [101, 102, 103],
        metadata={"help": "CreativeSim world seeds trained on (the demo's world is seed 0)"},
    )
    heldout_seed: int = field(default=201, metadata={"help": "the world scored, never trained on"})
    products: int = field(default=600, metadata={"help": "products per training world"})
    heldout_products: int = field(default=100)
    train_examples: int = field(default=100_000)
    heldout_examples: int = field(default=1_000)
    max_train_seconds: float | None = field(
        default=None, metadata={"help": "stop training after this many seconds of wall clock"}
    )
    eval_examples: int = field(
        default=600, metadata={"help": "held-out examples scored at the end"}
    )
    eval_batch_size: int = field(default=32)
    curve_steps: int | None = field(
        default=None,
        metadata={"help": "score `curve_examples` held-out examples every this many steps"},
    )
    curve_examples: int = field(default=128)
    vision_steps: int = field(
        default=0,
        metadata={"help": "stage one: steps of vision-tower training on the factors (0: none)"},
    )
    answer_weight: float = field(
        default=1.0,
        metadata={
            "help": "loss weight of each answer token (a question's YES/NO, a comparison's "
            "A/B/same; 1: TRL's plain token loss)"
        },
    )
    vision_batch_size: int = field(default=64)
    vision_learning_rate: float = field(default=1.0e-3)
    match_steps: int = field(
        default=0,
        metadata={
            "help": "stage three: steps of text-only word matching (creative4u.matching) after "
            "stage two, so that CoT-SFT need not teach whether two words are the same (0: none)"
        },
    )
    match_batch_size: int = field(default=64)
    match_learning_rate: float = field(default=3.0e-4)
    match_forms: list[str] = field(
        default_factory=lambda: ["protocol"],
        metadata={
            "help": "the forms stage three's lines take (creative4u.matching.FORMS): the "
            "protocol's marked comparison, the perception question, the comparison line, the "
            "product the title names copied onto the Q6 line"
        },
    )
    match_then_steps: int = field(
        default=0,
        metadata={
            "help": "stage three's second phase: steps of lines in `match_then_forms` after the "
            "`match_steps` in `match_forms`, with a schedule of its own (0: none); a form taught "
            "after the protocol's lines leaves their marks as learnt, where mixed in from the "
            "first step it held them at 0.91 (experiments/README.md)"
        },
    )
    match_then_forms: list[str] = field(
        default_factory=list, metadata={"help": "the forms of the second phase's lines"}
    )
    match_rehearsal_batch_size: int = field(
        default=16,
        metadata={
            "help": "corpus examples rehearsed at each step of stage three, so the words' lines do "
            "not overwrite the perception answers (0: none)"
        },
    )

    def __post_init__(self) -> None:
        # checked here, not when stage three draws its first line after an hour of stage two
        from creative4u.matching import FORMS

        for name in ("match_forms", "match_then_forms"):
            unknown = [f for f in getattr(self, name) if f not in FORMS]
            if unknown:
                raise ValueError(f"{name}: unknown form(s) {unknown}; choose from {list(FORMS)}")
        if self.match_then_steps and not self.match_then_forms:
            raise ValueError("match_then_steps needs match_then_forms (the second phase's lines)")


def main(
    script_args: PretrainScriptArguments, training_args: Any, model_args: ModelArguments
) -> Path:
    from datasets import load_from_disk
    from transformers import set_seed

    from creative4u.perception import evaluate
    from creative4u.threads import respect_omp_thread_limit
    from creative4u.training import last_checkpoint

    respect_omp_thread_limit()
    set_seed(training_args.seed)
    out = Path(training_args.output_dir)
    corpus = load_from_disk(script_args.corpus_path)
    corpus_info = json.loads((Path(script_args.corpus_path) / "corpus.json").read_text())
    last = last_checkpoint(training_args.output_dir)
    done = (
        None
        if last
        else finished_stage_two(out, training_args.max_steps, corpus_info, stage_three(script_args))
    )
    if done:
        from accelerate import PartialState

        # an earlier run of this recipe ended after stage two: only what is missing is run
        logger.info("stage two already finished in %s (step %d)", out, done["global_step"])
        stage_two, main_process = done, PartialState().is_main_process
    else:
        stage_two, main_process = _stages_one_and_two(
            script_args, training_args, model_args, corpus, corpus_info, last
        )
    if not main_process:
        return out

    # stage three and the scoring run on the saved weights, in the main process only
    import torch

    from creative4u.vlm import load

    model, processor = load(str(out), dtype=torch.float32)
    matching = done.get("word_matching") if done else None
    wanted = stage_three(script_args)
    if wanted and stage_three(matching) != wanted:
        from creative4u.matching import train_matching

        rehearsal = corpus_batches(
            corpus["train"], processor, script_args.match_rehearsal_batch_size, training_args
        )
        phases = [(script_args.match_steps, script_args.match_forms)]
        if script_args.match_then_steps:
            phases.append((script_args.match_then_steps, script_args.match_then_forms))
        reports = []
        for i, (steps, forms) in enumerate(phases):
            set_seed(training_args.seed + i)
            reports.append(
                train_matching(
                    model,
                    processor.tokenizer,
                    steps,
                    script_args.match_batch_size,
                    script_args.match_learning_rate,
                    training_args.seed + i,  # the second phase draws other lines
                    rehearsal=rehearsal,
                    forms=tuple(forms),
                )
            )
            logger.info("word matching (%s), held-out lines: %s", forms, reports[-1]["heldout"])
        matching = {**reports[0], "rehearsal_batch_size": script_args.match_rehearsal_batch_size}
        if len(reports) > 1:
            matching["then"] = reports[1]
        model.save_pretrained(out)

    t1 = time.time()
    report = evaluate(
        model,
        processor,
        corpus["heldout"],
        max_examples=script_args.eval_examples,
        batch_size=script_args.eval_batch_size,
    )
    logger.info("held-out perception: %s", json.dumps(report["by_field"]))
    info = {
        **stage_two,
        "stage": "pretrain",
        "base_model": model_args.model_name_or_path,
        "corpus": corpus_info,
        # `model pretrain` passes its recipe and overrides through unchanged
        "recipe_command": shlex.join(["creative4u", "model", "pretrain", *sys.argv[1:]]),
        "word_matching": matching,
        "heldout": {k: v for k, v in report.items() if k != "examples"},
        "heldout_samples": report["examples"],
        "eval_seconds": round(time.time() - t1, 1),
    }
    save_run_card(training_args.output_dir, info)
    write_card(out, info)
    return out


def corpus_batches(
    split: Any, processor: Any, batch_size: int, training_args: Any
) -> Callable[[], dict[str, Any]] | None:
    """Random batches of the corpus, collated as stage two saw them (TRL's collator, loss on the
    completion only), for stage three's rehearsal; None when `batch_size` is 0."""
    if not batch_size:
        return None
    import random

    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    rows = split.select_columns(["prompt", "completion", "images"])
    collate = DataCollatorForVisionLanguageModeling(
        processor, max_length=training_args.max_length, completion_only_loss=True
    )
    rng = random.Random(training_args.seed + 1)

    def draw() -> dict[str, Any]:
        return collate([rows[i] for i in rng.sample(range(len(rows)), batch_size)])

    return draw


STAGE_TWO_KEYS = (
    "global_step",
    "examples_seen",
    "train_seconds_this_run",
    "train_loss",
    "learning_rate",
    "freeze_vision",
    "answer_weight",
    "vision_stage",
)


def _stages_one_and_two(
    script_args: PretrainScriptArguments,
    training_args: Any,
    model_args: ModelArguments,
    corpus: Any,
    corpus_info: dict[str, Any],
    last: str | None,
) -> tuple[dict[str, Any], bool]:
    """Stage one (the vision tower on the factors) and stage two (the language model on the
    corpus), saved to the output folder; their record, and whether this is the main process."""
    from trl import SFTTrainer

    from creative4u.perception import answer_separator_ids, answer_token_weights
    from creative4u.training import load_for_training, resumable, time_budget_callback
    from creative4u.weighted_loss import token_weighted_trainer
    from pretrain.vision import pretrain_vision

    model, processor = load_for_training(model_args)
    # a fresh run over an older base's folder takes nothing of it: its stage one, its curve
    vision = previous_vision_stage(training_args.output_dir) if last else None
    if script_args.vision_steps and last is None:
        # stage one; a resumed run's checkpoint already holds its result
        vision = pretrain_vision(
            model,
            processor,
            corpus["train"],
            corpus["heldout"],
            script_args.vision_steps,
            script_args.vision_batch_size,
            script_args.vision_learning_rate,
            training_args.seed,
        )
    train = corpus["train"].select_columns(["prompt", "completion", "images"])
    curve = Path(training_args.output_dir) / "curve.jsonl"
    budget = time_budget_callback(script_args.max_train_seconds)
    callbacks = [budget]
    if script_args.curve_steps:
        callbacks.append(
            learning_curve_callback(
                processor,
                corpus["heldout"],
                script_args.curve_steps,
                script_args.curve_examples,
                curve,
                budget,
            )
        )
    trainer_cls = SFTTrainer
    if script_args.answer_weight != 1.0:
        separators = answer_separator_ids(processor.tokenizer)
        trainer_cls = token_weighted_trainer(
            SFTTrainer,
            lambda labels: answer_token_weights(labels, separators, script_args.answer_weight),
        )
    trainer = resumable(trainer_cls)(
        model=model,
        args=training_args,
        train_dataset=train,
        processing_class=processor,
        callbacks=callbacks,
    )
    main_process = trainer.accelerator.is_main_process
    if main_process and last is None:
        curve.unlink(missing_ok=True)
        (Path(training_args.output_dir) / RUN_CARD).unlink(missing_ok=True)
    if main_process and vision:
        save_run_card(training_args.output_dir, {"vision_stage": vision})
    if last and main_process:
        logger.info("resuming from %s", last)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=last)
    train_s = time.time() - t0
    trainer.save_model(training_args.output_dir)  # gathers sharded weights, writes on main
    if main_process:
        processor.save_pretrained(training_args.output_dir)
    batch = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    record = {
        "global_step": result.global_step,
        "examples_seen": result.global_step * batch * trainer.accelerator.num_processes,
        "train_seconds_this_run": round(train_s, 1),
        "train_loss": result.training_loss,
        "learning_rate": training_args.learning_rate,
        "freeze_vision": model_args.freeze_vision,
        "answer_weight": script_args.answer_weight,
        "vision_stage": vision,
        "word_matching": None,  # stage three, if any, is run on these weights next
    }
    if main_process:
        card = {"stage": "pretrain-stage-two", "corpus": corpus_info, **record}
        save_run_card(training_args.output_dir, card)
    return record, main_process


StageThree = tuple[int, int, tuple[str, ...], tuple[int, tuple[str, ...]] | None]


def stage_three(source: Any) -> StageThree | None:
    """What stage three is (steps, rehearsal batch, forms, and the second phase's steps and
    forms if any), from a recipe or a card's record."""
    if isinstance(source, PretrainScriptArguments):
        steps, rehearse = source.match_steps, source.match_rehearsal_batch_size
        forms = tuple(source.match_forms)
        then = source.match_then_steps, tuple(source.match_then_forms)
    else:
        record = source or {}
        steps, rehearse = record.get("steps", 0), record.get("rehearsal_batch_size", 0)
        forms = tuple(record.get("forms", ["protocol"]))  # before forms, only the protocol's
        second = record.get("then") or {}
        then = second.get("steps", 0), tuple(second.get("forms", []))
    return (steps, rehearse, forms, then if then[0] else None) if steps else None


def finished_stage_two(
    out: Path,
    max_steps: int,
    corpus_info: dict[str, Any],
    wanted: StageThree | None,
) -> dict[str, Any] | None:
    """The record of stage two when `out` already holds its finished result for this recipe
    (same steps, same corpus), so that a run interrupted after it, or a recipe that adds stage
    three, does not retrain it; None when stage two has to run (also when the weights already
    hold another stage three than the recipe's: it cannot be taken out)."""
    path = out / RUN_CARD
    if not path.is_file() or not (out / "model.safetensors").is_file():
        return None
    card = json.loads(path.read_text())
    if card.get("stage") not in ("pretrain", "pretrain-stage-two"):
        return None
    # the corpus's build seconds differ between two builds of the same corpus
    same = ("config", "creatives", "tasks")
    theirs = {k: (card.get("corpus") or {}).get(k) for k in same}
    if card.get("global_step") != max_steps or theirs != {k: corpus_info.get(k) for k in same}:
        return None
    done = stage_three(card.get("word_matching"))
    if done is not None and done != wanted:
        return None
    return {k: card.get(k) for k in (*STAGE_TWO_KEYS, "word_matching")}


def previous_vision_stage(output_dir: str) -> dict[str, Any] | None:
    """The vision stage's report from an earlier, interrupted run of the same output folder."""
    path = Path(output_dir) / RUN_CARD
    return json.loads(path.read_text()).get("vision_stage") if path.is_file() else None


def learning_curve_callback(
    processor: Any, heldout: Any, every: int, n: int, path: Path, budget: Any
) -> Any:
    """Score a slice of the held-out world every `every` steps and append it to `path` (JSON
    lines), so a long run shows when each factor is learnt. Its time is left out of the budget."""
    from transformers import TrainerCallback

    from creative4u.perception import evaluate

    class LearningCurve(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every or not state.is_world_process_zero:
                return
            t0 = time.time()
            report = evaluate(model, processor, heldout, max_examples=n)
            row = {
                "step": state.global_step,
                "by_field": {k: v["accuracy"] for k, v in report["by_field"].items()},
                "loss": next((h["loss"] for h in reversed(state.log_history) if "loss" in h), None),
            }
            with path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            logger.info("step %d held-out: %s", state.global_step, row["by_field"])
            budget.excluded += time.time() - t0

    return LearningCurve()


def _matching_scores(m: dict[str, Any]) -> str:
    """`marks 0.98, verdict 1.00, question 0.99 (before: 0.00, 0.00, 0.52)`."""
    keys = [k for k in m["heldout"] if k not in ("step", "loss", "n")]  # one score per form
    now = ", ".join(f"{k} {m['heldout'][k]:.2f}" for k in keys)
    before = ", ".join(f"{m['curve'][0][k]:.2f}" for k in keys)
    return f"{now} (before: {before})"


def write_card(out: Path, info: dict[str, Any]) -> None:
    """The model card: what the base was pretrained on, for how long, and how well it sees."""
    from creative4u.perception import TASKS

    cfg = info["corpus"]["config"]
    by_task = info["heldout"]["by_task"]
    fields = sorted({f for t in by_task.values() for f in t})
    lines = [
        "# A perception-pretrained Qwen2.5-VL base (from scratch)",
        "",
        "Pretrained by `creative4u model pretrain` on CreativeSim creatives only: it names each "
        "design factor of a creative, copies the query's and the title's words, and describes and "
        "compares two creatives in the selection protocol's layout. It never saw clicks, CTRs, "
        "pair labels, dimension scores or the click model: which properties users prefer is left "
        "to CoT-SFT on CreativePair.",
        "",
        "| | |",
        "|---|---|",
        f"| from | `{info['base_model']}` |",
        f"| training worlds (seeds) | {', '.join(map(str, cfg['train_seeds']))}, "
        f"{cfg['products']} products x 6 creatives each ({info['corpus']['creatives']['train']:,} creatives) |",
        f"| held-out world (seed) | {cfg['heldout_seed']}, {info['corpus']['creatives']['heldout']:,} creatives |",
        f"| task mix | {', '.join(f'{k} {v:.0%}' for k, v in cfg['mix'].items())} |",
        *(
            [
                f"| stage one: vision tower on the factors | {v['steps']:,} steps, "
                f"{v['images_seen']:,} images, {v['seconds'] / 60:.1f} min; held-out "
                + ", ".join(f"{k} {a:.2f}" for k, a in v["heldout_accuracy"].items())
                + " |"
            ]
            if (v := info.get("vision_stage"))
            else []
        ),
        f"| vision tower in stage two | {'kept as stage one left it' if info.get('freeze_vision') else 'trained'} |",
        f"| stage two: steps, examples seen | {info['global_step']:,}, {info['examples_seen']:,} |",
        f"| stage two wall clock | {info['train_seconds_this_run'] / 60:.1f} min |",
        *(
            [
                f"| stage three: word matching (text only) | {m['steps']:,} steps, "
                f"{m['lines_seen']:,} lines ({', '.join(m.get('forms', ['protocol']))}), "
                f"{m['seconds'] / 60:.1f} min; held-out lines: {_matching_scores(m)} |"
            ]
            if (m := info.get("word_matching"))
            else []
        ),
        *(
            [
                f"| stage three, then | {t['steps']:,} steps, {t['lines_seen']:,} lines "
                f"({', '.join(t['forms'])}), {t['seconds'] / 60:.1f} min; held-out lines: "
                f"{_matching_scores(t)} |"
            ]
            if (t := (info.get("word_matching") or {}).get("then"))
            else []
        ),
        f"| final training loss | {info['train_loss']:.4f} |",
        f"| held-out examples scored | {info['heldout']['n']} |",
        "",
        "## Held-out accuracy, by field and task (greedy)",
        "",
        "| field | " + " | ".join(t for t in TASKS if t in by_task) + " |",
        "|---" * (1 + sum(t in by_task for t in TASKS)) + "|",
    ]
    for f in fields:
        cells = [
            f"{by_task[t][f]['accuracy']:.3f} (n {by_task[t][f]['n']})" if f in by_task[t] else ""
            for t in TASKS
            if t in by_task
        ]
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    side = int(info["corpus"]["pixel_bounds"][1] ** 0.5)
    weak = sorted(f for f, v in info["heldout"]["by_field"].items() if v["accuracy"] < 0.9)
    lines += [
        "",
        "## What it cannot see",
        "",
        f"Creatives are rendered at {cfg['image_size']} px and seen at {side} px. The words of "
        "in-image text (selling point, call to action, price digits) are not asked for: legible "
        f"type is about {side * 32 // 448} px high there, illegible type about "
        f"{max(1, side * 13 // 448)} px, so a description only names which text elements are "
        "legibly there, or `faint` when some illegible text is.",
        *(
            [
                "",
                f"`text` is the field the resolution limits: illegible type is about "
                f"{max(1, side * 13 // 448)} px high, and telling it from no text is beyond the "
                "vision tower (on the small preset a linear probe of its merged tokens did no "
                "better than always answering `faint`; experiments/README.md, 'Why `text` stays "
                "under 90 %').",
            ]
            if "text" in weak
            else []
        ),
        "",
        "Fields under 90 % on the held-out world: " + (", ".join(weak) if weak else "none") + ".",
    ]
    lines += [
        "",
        "## Rebuild",
        "",
        "One command (it builds the from-scratch model and the corpus if they are missing, and "
        "resumes an interrupted run from its last checkpoint):",
        "",
        "```bash",
        info["recipe_command"],
        "```",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))

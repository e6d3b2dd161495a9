"""CoT-SFT: teach the selector to walk the protocol and name the winner (TRL `SFTTrainer`).

Each CreativePair row becomes a conversational prompt (the protocol prompt with the two
creatives) and a completion (the rationale), loss on the completion only; with order-swap
augmentation every pair is also shown B-first with the rationale mirrored. Whether all parameters
or a LoRA adapter are trained is the recipe's `finetune` field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from creative4u.training import ModelArguments, PairDataArguments

logger = logging.getLogger("creative4u.sft")


@dataclass
class SFTScriptArguments(PairDataArguments):
    """The data block of an SFT recipe (see `PairDataArguments`), and how the loss weighs the
    decision (`sft.loss`; 1 and 1 is TRL's plain token loss)."""

    answer_weight: float = field(default=1.0, metadata={"help": "loss weight of the answer letter"})
    verdict_weight: float = field(
        default=1.0, metadata={"help": "loss weight of each Q3-Q9 verdict sign"}
    )
    match_steps: int = field(
        default=0,
        metadata={
            "help": "steps of text-only word matching before SFT (creative4u.matching), for a "
            "from-scratch base; a pretrained language model knows it"
        },
    )
    budget_schedule: bool = field(
        default=True,
        metadata={
            "help": "a cosine or linear learning rate decays over max_train_seconds when that "
            "ends before max_steps (creative4u.training.budget_scheduled)"
        },
    )
    match_batch_size: int = field(default=64)
    match_learning_rate: float = field(default=3.0e-4)


def main(script_args: SFTScriptArguments, training_args, model_args: ModelArguments) -> Path:
    import time

    from trl import SFTTrainer

    from creative4u.training import (
        budget_scheduled,
        last_checkpoint,
        peft_config_for,
        prepare_run,
        resumable,
        save_run_card,
        time_budget_callback,
    )
    from creative4u.validation import validation_accuracy
    from sft.loss import decision_weighted_trainer

    model, processor, pairs, train = prepare_run(
        script_args, training_args, model_args, with_completion=True
    )
    logger.info(
        "training on %d examples (%d pairs)", len(train), len(pairs[script_args.train_split])
    )
    last = last_checkpoint(training_args.output_dir)
    matching = None
    if script_args.match_steps and not last:  # a checkpoint already holds its effect
        from creative4u.matching import train_matching

        matching = train_matching(
            model,
            processor.tokenizer,
            script_args.match_steps,
            script_args.match_batch_size,
            script_args.match_learning_rate,
            training_args.seed,
            progress=training_args.process_index == 0,
        )
        logger.info("word matching, held-out lines: %s", matching["heldout"])
    budget = time_budget_callback(script_args.max_train_seconds)
    trainer_cls = resumable(SFTTrainer)
    if (script_args.answer_weight, script_args.verdict_weight) != (1.0, 1.0):
        trainer_cls = decision_weighted_trainer(
            trainer_cls, processor.tokenizer, script_args.answer_weight, script_args.verdict_weight
        )
    if script_args.budget_schedule:
        trainer_cls = budget_scheduled(trainer_cls, budget)
    trainer = trainer_cls(
        model=model,
        args=training_args,
        train_dataset=train,
        processing_class=processor,
        peft_config=peft_config_for(model_args),
        callbacks=[budget],
    )
    if last:
        logger.info("resuming from %s", last)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=last)
    train_s = time.time() - t0
    trainer.save_model(training_args.output_dir)  # gathers sharded weights, writes on main
    is_main = trainer.is_world_process_zero()
    if is_main:
        processor.save_pretrained(training_args.output_dir)

    metrics = {}
    if script_args.max_eval_pairs and script_args.eval_split in pairs:
        metrics = validation_accuracy(
            trainer.model,
            processor,
            pairs[script_args.eval_split],
            max_pairs=script_args.max_eval_pairs,
        )
        if is_main:
            logger.info("validation: %s", metrics)
    if not is_main:
        return Path(training_args.output_dir)
    save_run_card(
        training_args.output_dir,
        {
            "stage": "sft",
            "base_model": model_args.model_name_or_path,
            "finetune": model_args.finetune,
            "freeze_vision": model_args.freeze_vision,
            "answer_weight": script_args.answer_weight,
            "verdict_weight": script_args.verdict_weight,
            "budget_schedule": script_args.budget_schedule,
            "dataset": script_args.dataset_path,
            "train_examples": len(train),
            "train_seconds": round(train_s, 1),
            "train_loss": result.training_loss,
            "global_step": result.global_step,
            "validation": metrics,
            # a resumed run did not redo it: the record of the run that did stays
            **({"word_matching": matching} if matching else {}),
        },
    )
    return Path(training_args.output_dir)

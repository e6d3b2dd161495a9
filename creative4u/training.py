"""What the SFT and GRPO stages share: the model recipe fields, model loading for training, and
turning CreativePair rows into TRL's conversational prompt / completion / images format.

Both stages fine-tune either all parameters (from-scratch bases, where LoRA has nothing to
preserve) or a LoRA adapter (pretrained checkpoints): that choice is a recipe field here, so that
the entry points read like their recipes and never special-case a model.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from creative4u.images import prepare_image
from creative4u.protocol import build_messages, flip_letter, parse, render

LANGUAGE_LINEAR = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
VISION_LINEAR = r".*visual.*\.(qkv|proj|fc1|fc2|gate_proj|up_proj|down_proj)"
VISION_PARAM = re.compile(r"(^|.*\.)visual\.")


@dataclass
class ModelArguments:
    """The model and how it is fine-tuned (one block of every sft/grpo recipe)."""

    model_name_or_path: str = field(
        default="models/small-base", metadata={"help": "base model: folder or hub id"}
    )
    adapter_path: str | None = field(
        default=None,
        metadata={"help": "LoRA adapter to start from (e.g. the SFT adapter for GRPO)"},
    )
    finetune: str = field(default="full", metadata={"help": "full | lora"})
    lora_r: int = field(default=32, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=64, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_vision: bool = field(default=False, metadata={"help": "also put LoRA on the vision tower"})
    freeze_vision: bool = field(
        default=False,
        metadata={
            "help": "finetune=full: keep the vision tower (and its merger) as the base has it, "
            "train the language model only, as the LoRA recipes do"
        },
    )
    dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | float16 | auto"})
    attn_implementation: str | None = field(
        default=None, metadata={"help": "e.g. sdpa, flash_attention_2"}
    )

    def __post_init__(self) -> None:
        if self.finetune not in ("full", "lora"):
            raise ValueError(f"finetune must be 'full' or 'lora', got {self.finetune!r}")


@dataclass
class PairDataArguments:
    """Where the pairs come from and how they are presented (shared by sft and grpo recipes)."""

    dataset_path: str = field(
        default="runs/demo/dataset", metadata={"help": "CreativePair DatasetDict folder"}
    )
    train_split: str = field(default="train")
    eval_split: str = field(default="validation")
    max_train_pairs: int | None = field(
        default=None, metadata={"help": "use at most this many training pairs"}
    )
    max_eval_pairs: int | None = field(
        default=64, metadata={"help": "validation pairs scored during training"}
    )
    swap_augmentation: bool = field(
        default=True, metadata={"help": "present each pair in both orders (rationale mirrored)"}
    )
    max_train_seconds: float | None = field(
        default=None,
        metadata={
            "help": "stop training after this many seconds (wall clock), e.g. to compare stages at equal time"
        },
    )


def lora_config(args: ModelArguments):
    from peft import LoraConfig

    target = LANGUAGE_LINEAR if not args.lora_vision else f"({LANGUAGE_LINEAR})|({VISION_LINEAR})"
    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=target,
        task_type="CAUSAL_LM",
    )


def torch_dtype(name: str):
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


def load_for_training(args: ModelArguments) -> tuple[Any, Any]:
    """(model, processor) ready for a trainer. With `adapter_path`, the adapter is loaded
    trainable (continue a LoRA run); with finetune=full and an adapter, it is merged first."""
    from transformers import AutoModelForImageTextToText

    from creative4u.vlm import load_processor

    kwargs: dict[str, Any] = {"dtype": torch_dtype(args.dtype)}
    if args.attn_implementation:
        kwargs["attn_implementation"] = args.attn_implementation
    model = AutoModelForImageTextToText.from_pretrained(args.model_name_or_path, **kwargs)
    processor = load_processor(args.model_name_or_path)
    processor.tokenizer.padding_side = "left"
    if args.adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(
            model, args.adapter_path, is_trainable=args.finetune == "lora"
        )
        if args.finetune == "full":
            model = model.merge_and_unload()
    if args.freeze_vision and args.finetune == "full":
        for name, param in model.named_parameters():
            if VISION_PARAM.match(name):
                param.requires_grad_(False)
    model.config.use_cache = False
    return model, processor


def label_from_row(row: dict[str, Any]) -> str | None:
    return row.get("label") or None


def _completion(row: dict[str, Any], swap: bool) -> list[dict[str, str]]:
    verdict = parse(row["rationale"])
    if not verdict.well_formed:
        raise ValueError(f"pair {row['pair_id']}: rationale is not well-formed ({verdict.reason})")
    if swap:
        verdict = verdict.swapped()
    return [{"role": "assistant", "content": render(verdict)}]


def _example(
    row: dict[str, Any], a: Any, b: Any, swap: bool, with_completion: bool
) -> dict[str, Any]:
    """The TRL example of `row` with its two images already prepared (A first, before `swap`)."""
    label = label_from_row(row)
    if swap:
        a, b = b, a
        label = flip_letter(label)
    ex: dict[str, Any] = {
        "prompt": build_messages(row["query"], row["title"]),
        "images": [a, b],
        "label": label or "",
        "pair_id": row["pair_id"],
        "swapped": swap,
        "creative_a": row["creative_b"] if swap else row["creative_a"],
        "creative_b": row["creative_a"] if swap else row["creative_b"],
        "query": row["query"],
        "title": row["title"],
    }
    if with_completion:
        ex["completion"] = _completion(row, swap)
    return ex


def pair_example(
    row: dict[str, Any], processor: Any, swap: bool = False, with_completion: bool = True
) -> dict[str, Any]:
    """One CreativePair row as TRL wants it: conversational prompt, completion and the two images
    (already at the model's pixel size). `swap` presents B first, with the rationale mirrored."""
    a = prepare_image(row["image_a"], processor)
    b = prepare_image(row["image_b"], processor)
    return _example(row, a, b, swap, with_completion)


def format_pairs(
    ds: Any,
    processor: Any,
    *,
    swap_augmentation: bool,
    with_completion: bool = True,
    max_pairs: int | None = None,
    seed: int = 0,
    desc: str = "formatting pairs",
    progress: bool = True,
) -> Any:
    """A CreativePair split as TRL examples; with swap augmentation every pair appears in both
    orders, so a position bias earns nothing.

    A creative takes part in many pairs, so each distinct image is decoded, fitted to the model's
    pixel size and PNG-encoded once, not once per pair and order (that was two minutes of every
    training run's start on the default world)."""
    from datasets import Dataset, Features, Image, Sequence, Value
    from tqdm.auto import tqdm

    from creative4u.images import stored_image_key, to_png_bytes

    if max_pairs is not None and len(ds) > max_pairs:
        ds = ds.shuffle(seed=seed).select(range(max_pairs))
    raw = ds.cast_column("image_a", Image(decode=False)).cast_column("image_b", Image(decode=False))
    prepared: dict[str, dict[str, Any]] = {}

    def fitted(value: dict[str, Any]) -> dict[str, Any]:
        key = stored_image_key(value)
        if key not in prepared:
            png = to_png_bytes(prepare_image(value, processor))
            prepared[key] = {"bytes": png, "path": None}
        return prepared[key]

    rows = []
    orders = (False, True) if swap_augmentation else (False,)
    bar = tqdm(raw, desc=desc, unit="pair", total=len(raw), mininterval=2.0, disable=not progress)
    for row in bar:
        a, b = fitted(row["image_a"]), fitted(row["image_b"])
        rows += [_example(row, a, b, swap, with_completion) for swap in orders]
    random.Random(seed).shuffle(rows)
    out = Dataset.from_list(rows)
    feats = dict(out.features)
    feats["images"] = Sequence(Image())
    feats["pair_id"] = Value("string")
    return out.cast(Features(feats))


def prepare_run(
    script_args: PairDataArguments,
    training_args: Any,
    model_args: ModelArguments,
    *,
    with_completion: bool,
) -> tuple[Any, Any, Any, Any]:
    """What every training stage does first: seed, load the model, load CreativePair and format
    its training split. Returns (model, processor, pairs DatasetDict, training examples)."""
    from datasets import load_from_disk
    from transformers import set_seed

    from creative4u.threads import respect_omp_thread_limit

    respect_omp_thread_limit()
    set_seed(training_args.seed)
    model, processor = load_for_training(model_args)
    pairs = load_from_disk(script_args.dataset_path)
    train = format_pairs(
        pairs[script_args.train_split],
        processor,
        swap_augmentation=script_args.swap_augmentation,
        with_completion=with_completion,
        max_pairs=script_args.max_train_pairs,
        seed=training_args.seed,
        progress=training_args.should_log,
    )
    return model, processor, pairs, train


def setup_logging(training_args: Any) -> None:
    """INFO lines from the main process only: under DDP or DeepSpeed every rank runs the same
    code, and N copies of each line hide the one that matters."""
    import logging

    logging.basicConfig(
        level=logging.INFO if training_args.should_log else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )


def resumable(trainer_cls: type) -> type:
    """A subclass of a transformers trainer (passed in, so this module imports no trainer) that
    resumes a full fine-tune with the checkpoint's weights.

    `save_pretrained` writes checkpoints in the checkpoint format, undoing the key renames
    transformers applies when it loads one (Qwen2.5-VL: `visual.*` and `model.layers.*` on disk,
    `model.visual.*` and `model.language_model.*` in memory), but `Trainer` loads a resumed
    checkpoint's state dict as it is, without strictness: nothing matches, and the run goes on
    from the base weights with the optimizer state of the checkpoint. Loading through
    `from_pretrained` applies the renames; the copy is strict, so a weight that does not load
    stops the run. Adapters, DeepSpeed and FSDP keep the trainer's own loading (they do not go
    through the renames)."""

    class ResumableTrainer(trainer_cls):  # type: ignore[misc, valid-type]
        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            target = self.model if model is None else model
            plain = not (
                self.is_deepspeed_enabled
                or self.is_fsdp_enabled
                or hasattr(target, "peft_config")
                or not hasattr(target, "config")
            )
            if not plain or not (Path(resume_from_checkpoint) / "config.json").is_file():
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            saved = type(target).from_pretrained(resume_from_checkpoint, dtype=target.dtype)
            target.load_state_dict(saved.state_dict())
            del saved

    ResumableTrainer.__name__ = ResumableTrainer.__qualname__ = f"Resumable{trainer_cls.__name__}"
    return ResumableTrainer


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The checkpoint an interrupted run resumes from (None for a fresh run)."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


def peft_config_for(model_args: ModelArguments):
    """A new LoRA config when the recipe asks for LoRA and no adapter is being continued."""
    return (
        lora_config(model_args)
        if model_args.finetune == "lora" and not model_args.adapter_path
        else None
    )


def main_process_value(value: float) -> float:
    """The main process's `value` on every rank (itself when not distributed). A decision each
    rank took on its own clock could differ by a step, and a rank that stops while the others go
    on waits forever in their next collective; a learning rate each rank took from its own clock
    would move the replicas apart."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    import torch

    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.broadcast(t, src=0)
    return float(t.item())


def main_process_says(flag: bool) -> bool:
    """The main process's `flag` on every rank (see `main_process_value`)."""
    return bool(main_process_value(float(flag)))


BUDGET_STATE = "time_budget.json"  # in each checkpoint: the training seconds spent up to it


def time_budget_callback(seconds: float | None):
    """A trainer callback that ends training once `seconds` of training have passed (None: no
    limit), not counting time other callbacks declare in `excluded`. Comparing GRPO with
    continued SFT is only fair at equal training time. Each checkpoint records the seconds spent
    up to it, so a resumed run spends what is left of the budget, not a new one. `progress` (0
    to 1, the share of the budget spent at the last step's end) is what `budget_scheduled`
    decays the learning rate by. Under DDP or DeepSpeed every rank stops at the same step and
    reads the same progress: the main process's clock decides (`main_process_value`)."""
    import time

    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        excluded = 0.0  # seconds other callbacks spent outside training (e.g. validation)
        before = 0.0  # training seconds of the run this one resumed
        progress = 0.0
        start: float | None = None

        def __init__(self) -> None:
            self.seconds = seconds

        def elapsed(self) -> float:
            """Training seconds so far, those before a resume included."""
            if self.start is None:
                return self.before
            return self.before + time.time() - self.start - self.excluded

        def on_train_begin(self, args, state, control, **kwargs):
            self.start, self.excluded, self.before = time.time(), 0.0, 0.0
            saved = Path(args.output_dir) / f"checkpoint-{state.global_step}" / BUDGET_STATE
            if state.global_step and saved.is_file():  # resumed: the budget goes on
                self.before = float(json.loads(saved.read_text())["train_seconds"])

        def on_step_end(self, args, state, control, **kwargs):
            if seconds is None:
                return
            self.progress = min(1.0, main_process_value(self.elapsed() / seconds))
            if self.progress >= 1.0:
                control.should_training_stop = True
                control.should_save = True

        def on_save(self, args, state, control, **kwargs):
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and ckpt.is_dir():
                state_file = ckpt / BUDGET_STATE
                state_file.write_text(json.dumps({"train_seconds": round(self.elapsed(), 3)}))

    return TimeBudget()


def budget_lr_factor(step: int, *, warmup: int, total: int, kind: str, progress: Any) -> float:
    """The learning-rate factor of a cosine or linear schedule that ends when the first of the
    step budget (`total`) and the time budget (`progress()`, 0 to 1) runs out. Warm-up stays in
    steps, as transformers' schedules have it."""
    import math

    if step < warmup:
        return step / max(1, warmup)
    p = min(1.0, max((step - warmup) / max(1, total - warmup), progress()))
    return 0.5 * (1.0 + math.cos(math.pi * p)) if kind == "cosine" else 1.0 - p


def budget_scheduled(trainer_cls: type, budget: Any) -> type:
    """A subclass of a transformers trainer whose cosine or linear learning-rate schedule decays
    over the time budget (`time_budget_callback`) when that runs out before `max_steps`.

    With a step schedule under a time budget, the run stops wherever the clock says, part-way
    down the curve: how far depends on the machine's speed, and the last steps never get the low
    learning rate that settles the weights. Other schedules, and runs without a time budget,
    keep the trainer's own."""
    from functools import partial

    from torch.optim.lr_scheduler import LambdaLR

    class BudgetScheduledTrainer(trainer_cls):  # type: ignore[misc, valid-type]
        def create_scheduler(self, num_training_steps, optimizer=None):
            kind = str(getattr(self.args.lr_scheduler_type, "value", self.args.lr_scheduler_type))
            if self.lr_scheduler is None and budget.seconds and kind in ("cosine", "linear"):
                factor = partial(
                    budget_lr_factor,
                    warmup=self.args.get_warmup_steps(num_training_steps),
                    total=num_training_steps,
                    kind=kind,
                    progress=lambda: budget.progress,
                )
                self.lr_scheduler = LambdaLR(optimizer or self.optimizer, factor)
                self._created_lr_scheduler = True
            return super().create_scheduler(num_training_steps, optimizer)

    BudgetScheduledTrainer.__name__ = BudgetScheduledTrainer.__qualname__ = (
        f"BudgetScheduled{trainer_cls.__name__}"
    )
    return BudgetScheduledTrainer


RUN_CARD = "creative4u_run.json"  # in every trained model folder, next to its weights


def save_run_card(output_dir: str | Path, info: dict[str, Any]) -> None:
    """A machine-readable note of what produced a checkpoint (stage, recipe, data, metrics)."""
    path = Path(output_dir) / RUN_CARD
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(info)
    path.write_text(json.dumps(old, indent=2, default=str) + "\n")

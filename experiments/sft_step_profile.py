"""Where an SFT step's time goes on this machine: collation, forward, backward, optimizer.

    python experiments/sft_step_profile.py --config recipes/small/sft.yaml \
        --dataset_path runs/demo/dataset [--steps 12] [--autocast bf16] [--top-ops 20]

Builds the trainer exactly as `sft` does (the recipe, its decision-weighted loss), then runs
`--steps` steps by hand, timing each part, after two warm-up steps. Prints the mean seconds per
part, the tokens per batch and the share of them that is padding. `--autocast bf16` runs the
forward and backward under CPU autocast, to see whether bfloat16 kernels pay at this model size.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext


def _time_vision_tower(model) -> list[float]:
    """A one-item list that the vision tower's forward adds its seconds to (the caller resets
    it): the frozen tower reruns on every creative of every batch, so its share is what caching
    its output would save."""
    visual = next(m for n, m in model.named_modules() if n.endswith("visual"))
    seconds = [0.0]
    started = [0.0]

    def begin(*_):
        started[0] = time.perf_counter()

    def end(*_):
        seconds[0] += time.perf_counter() - started[0]

    visual.register_forward_pre_hook(begin)
    visual.register_forward_hook(end)
    return seconds


def main() -> None:
    import torch
    from trl import SFTConfig, SFTTrainer, TrlParser

    from creative4u.training import ModelArguments, prepare_run
    from sft.loss import decision_weighted_trainer
    from sft.train import SFTScriptArguments

    argv = sys.argv[1:]
    steps, autocast = 12, None
    if "--steps" in argv:
        i = argv.index("--steps")
        steps = int(argv[i + 1])
        del argv[i : i + 2]
    top = 0
    if "--top-ops" in argv:
        i = argv.index("--top-ops")
        top = int(argv[i + 1])
        del argv[i : i + 2]
    if "--autocast" in argv:
        i = argv.index("--autocast")
        autocast = argv[i + 1]
        del argv[i : i + 2]
    parser = TrlParser((SFTScriptArguments, SFTConfig, ModelArguments))
    script_args, training_args, model_args = parser.parse_args_and_config(
        args=argv + ["--output_dir", "/tmp/sft_step_profile", "--report_to", "none"]
    )
    model, processor, _pairs, train = prepare_run(
        script_args, training_args, model_args, with_completion=True
    )
    trainer = decision_weighted_trainer(
        SFTTrainer, processor.tokenizer, script_args.answer_weight, script_args.verdict_weight
    )(model=model, args=training_args, train_dataset=train, processing_class=processor)
    trainer.create_optimizer_and_scheduler(num_training_steps=steps + 2)
    opt = trainer.optimizer
    model = trainer.model
    model.train()
    it = iter(trainer.get_train_dataloader())
    ctx = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
        if autocast == "bf16"
        else (lambda: nullcontext())
    )
    parts: dict[str, list[float]] = {"collate": [], "forward": [], "backward": [], "optimizer": []}
    vision, vision_s = _time_vision_tower(model), []
    tokens, pad = [], []
    for step in range(steps + 2):
        t0 = time.perf_counter()
        vision[0] = 0.0
        batch = trainer._prepare_inputs(next(it))
        t1 = time.perf_counter()
        with ctx():
            loss = trainer.compute_loss(model, batch)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        if step >= 2:
            vision_s.append(vision[0])
            for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                parts[k].append(v)
            mask = batch["attention_mask"]
            tokens.append(int(mask.numel()))
            pad.append(1.0 - float(mask.float().mean()))
    if top:  # one more step under torch.profiler: the operators that take the time
        from torch.profiler import ProfilerActivity, profile

        batch = trainer._prepare_inputs(next(it))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            with ctx():
                loss = trainer.compute_loss(model, batch)
            loss.backward()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))
    mean = {k: round(sum(v) / len(v), 4) for k, v in parts.items()}
    total = sum(mean.values())
    mean["of_forward_vision_tower"] = round(sum(vision_s) / len(vision_s), 4)
    print(
        json.dumps(
            {
                "autocast": autocast,
                "threads": torch.get_num_threads(),
                "steps": steps,
                "seconds_per_step": round(total, 4),
                "parts": mean,
                "share": {k: round(v / total, 3) for k, v in mean.items()},
                "tokens_per_batch": sum(tokens) / len(tokens),
                "padding_share": round(sum(pad) / len(pad), 3),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

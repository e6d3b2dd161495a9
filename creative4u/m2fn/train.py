"""Train M2FN on the impression table, then evaluate it (SPRC / LCC on the test cells, pairwise
accuracy on CreativePair's test pairs) and write the checkpoint.

    creative4u m2fn train --data DATASET --out CKPT
    accelerate launch -m creative4u.m2fn.train --data DATASET --out CKPT      # several devices

The loop runs under accelerate's `Accelerator`. A resumable state (weights, optimiser, schedule,
random generators, step) is saved every `save_steps` and at each epoch's end into OUT/state; run
the same command again after an interruption and it continues from there. The weights shipped
are those of the validation point (each epoch's end, and every `eval_steps`) with the best
validation SPRC, or with `select_on=pairs` the best validation pair accuracy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from creative4u.m2fn.checkpoint import CONFIG, FEATURES
from creative4u.m2fn.config import HCCM, MODULES, M2FNConfig, TrainConfig

logger = logging.getLogger("creative4u.m2fn")

STATE = "state"
TRAINER_STATE = "trainer_state.json"
BEST = "best.safetensors"


def flush_denormals() -> None:
    """Treat denormal floats as zero in this thread, before any data is prepared.

    A guard: CPU convolution kernels can be much slower on denormal floats. (An ablation that sat
    at its first step for ten minutes was first blamed on denormals; its cause was an
    OMP_THREAD_LIMIT leaked by OCR, see `creative4u.threads`.)
    """
    import torch

    torch.set_flush_denormal(True)


def train(
    model_cfg: M2FNConfig,
    cfg: TrainConfig,
    *,
    prepared: Any = None,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train, select, save and evaluate; returns the metrics (also in OUT/metrics.json).
    `prepared` lets the ablation share one data preparation between its runs."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from creative4u.m2fn.data import prepare
    from creative4u.m2fn.image_features import FeatureCache, check_ocr_available
    from creative4u.m2fn.model import M2FN, load_vgg19_weights
    from creative4u.threads import respect_omp_thread_limit

    accelerator = Accelerator()
    respect_omp_thread_limit()
    if model_cfg.backbone == "vlm" and Path(model_cfg.vision_tower).is_dir():
        # the checkpoint names its VLM: an absolute folder keeps it loadable from anywhere
        tower = str(Path(model_cfg.vision_tower).resolve())
        model_cfg = dataclasses.replace(model_cfg, vision_tower=tower)
    flush_denormals()
    out = Path(cfg.out)
    state_dir = out / STATE
    resume = _check_out_dir(out, state_dir, model_cfg, cfg, accelerator.is_main_process)
    set_seed(cfg.seed)
    check_ocr_available(model_cfg.ocr)

    if prepared is None:
        cache = FeatureCache(cfg.feature_cache or out / FEATURES)
        with accelerator.main_process_first():
            prepared = prepare(model_cfg, cfg, cache, progress=_bars(cfg, accelerator))
            if accelerator.is_main_process:
                cache.save()
    targets = Targets.from_prepared(prepared, model_cfg)

    model = M2FN.for_encoder(model_cfg, prepared.encoder)
    if model_cfg.backbone == "vgg19":
        used = load_vgg19_weights(model.backbone, cfg.vgg19_weights)
        logger.info("VGG-19 weights from %s", used)
    targets.init_model(model)

    train_idx = prepared.split("train")
    dataset = CellDataset(prepared, targets, train_idx)
    sampler = EpochSampler(len(dataset), cfg.seed)
    # the loader's own generator: starting an epoch must not draw from the global generator that
    # dropout uses, or a resumed run would drop out different units than an uninterrupted one
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        collate_fn=_identity,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = len(loader)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(total, int(cfg.warmup_ratio * total))
    )
    accelerator.register_for_checkpointing(scheduler)

    st = {"step": 0, "best_sprc": None, "best_epoch": None, "history": []}
    if resume:
        accelerator.load_state(str(state_dir))
        st = json.loads((state_dir / TRAINER_STATE).read_text())
        logger.info("resuming from step %d", st["step"])
        if accelerator.is_main_process:
            print(f"resuming from step {st['step']} of {total}", file=sys.stderr)

    def save_state() -> None:
        accelerator.save_state(str(state_dir))
        if accelerator.is_main_process:
            _write_json(
                state_dir / TRAINER_STATE,
                {**st, "model": model_cfg.to_dict(), "train": cfg.to_dict()},
            )

    blocks = [
        (b.start, b.stop, torch.from_numpy(b.missing)) for b in prepared.encoder.context_blocks
    ]
    val_idx = prepared.split("validation")
    unwrapped = accelerator.unwrap_model(model)
    bar = _progress(total, st["step"], cfg, accelerator)
    t0 = time.time()
    model.train()
    while st["step"] < total:
        epoch, done_in_epoch = divmod(st["step"], steps_per_epoch)
        sampler.set_epoch(epoch)
        epoch_loader = loader
        if done_in_epoch:
            epoch_loader = accelerator.skip_first_batches(loader, done_in_epoch)
        # accelerate's loaders set their sampler's epoch from their own iteration count, which a
        # resumed run (or the fresh loader of skip_first_batches) would get wrong
        epoch_loader.set_epoch(epoch)
        for batch in epoch_loader:
            aux = _hide_context(batch["aux"], blocks, cfg.context_dropout)
            logits = model(batch["pixels"], aux)
            loss = targets.loss(unwrapped, logits, batch)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            st["step"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4g}", epoch=epoch)
            end_of_epoch = st["step"] % steps_per_epoch == 0 or st["step"] == total
            checkpoint = bool(cfg.eval_steps) and st["step"] % cfg.eval_steps == 0
            if end_of_epoch or checkpoint:
                _validate(unwrapped, prepared, val_idx, epoch, st, state_dir, accelerator)
            if st["step"] % cfg.save_steps == 0 or end_of_epoch or checkpoint:
                save_state()
            if on_step is not None:
                on_step(st["step"])
            if st["step"] >= total:
                break
    bar.close()
    accelerator.wait_for_everyone()
    metrics: dict[str, Any] = {}
    if accelerator.is_main_process:
        metrics = finish(unwrapped, model_cfg, cfg, prepared, st, state_dir, time.time() - t0)
    accelerator.wait_for_everyone()
    return metrics


def finish(
    model: Any,
    model_cfg: M2FNConfig,
    cfg: TrainConfig,
    prepared: Any,
    st: dict[str, Any],
    state_dir: Path,
    seconds: float,
) -> dict[str, Any]:
    """Best weights -> checkpoint; test SPRC / LCC; pairwise calibration and accuracy."""
    from safetensors.torch import load_file

    from creative4u.m2fn.checkpoint import METRICS, save_model, write_config
    from creative4u.m2fn.evaluate import (
        cell_metrics,
        fit_prefer_scale,
        pair_metrics,
        pair_set_ctrs,
        predict,
    )

    out = Path(cfg.out)
    if (state_dir / BEST).is_file():
        model.load_state_dict(load_file(str(state_dir / BEST)))
    model.eval()
    extra = {"train": cfg.to_dict(), "best_epoch": st["best_epoch"], "steps": st["step"]}
    save_model(out, model, model_cfg, prepared.encoder, prefer_scale=1.0, **extra)
    prepared.cache.save(out / FEATURES)

    test = prepared.split("test")
    pred = predict(model, prepared.pixels, prepared.image_index[test], prepared.aux[test])
    metrics: dict[str, Any] = {
        "modules": model_cfg.modules_on,
        "name": model_cfg.name,
        "backbone": model_cfg.backbone,
        **{m: getattr(model_cfg, m) for m in (*MODULES, *HCCM)},
        "loss": model_cfg.loss,
        **cell_metrics(prepared.rows.iloc[test], pred),
        "train_cells": int(len(prepared.split("train"))),
        "steps": st["step"],
        "best_epoch": st["best_epoch"],
        "best_step": st.get("best_step"),
        "validation_sprc": st["best_sprc"],
        "validation_score": st.get("best_score"),
        "train_seconds": round(seconds, 1),
    }
    scale = 1.0
    val_pairs, test_pairs = prepared.pair_set("validation"), prepared.pair_set("test")
    if val_pairs is not None and len(val_pairs):
        scale = fit_prefer_scale(pair_set_ctrs(model, val_pairs), val_pairs.labels)
    if test_pairs is not None:
        metrics |= pair_metrics(pair_set_ctrs(model, test_pairs), test_pairs.labels, scale)
    else:
        metrics |= {"pair_accuracy": None, "n_pairs": 0}
    metrics["prefer_scale"] = scale
    save_config = {**_read_json(out / CONFIG), "prefer_scale": scale, "metrics": metrics}
    write_config(out, save_config)
    prepared.cache.save(out / FEATURES)
    _write_json(out / METRICS, metrics)
    return metrics


class Targets:
    """What the loss compares the head with, per training cell, for the configured loss."""

    def __init__(self, model_cfg: M2FNConfig, rows: Any, train_idx: np.ndarray):
        from creative4u.m2fn.losses import (
            binomial_log_sigma,
            bucket_centres,
            ctr_edges,
            lognormal_buckets,
            smoothed_ctr,
        )

        self.kind = model_cfg.loss
        imp = rows["impressions"].to_numpy(np.float64)
        ctr = rows["ctr"].to_numpy(np.float64)
        tr_imp, tr_ctr = imp[train_idx], ctr[train_idx]
        self.mean_ctr = float((tr_ctr * tr_imp).sum() / max(tr_imp.sum(), 1.0))
        # eq. 2's weights are the impressions; dividing them by their mean, and the CTRs by their
        # mean, rescales the loss by a constant and keeps its gradients away from 1e-6
        self.weight = (imp / max(tr_imp.mean(), 1.0)).astype(np.float32)
        self.ctr_scale = max(self.mean_ctr, 1e-6)
        self.value = (ctr / self.ctr_scale).astype(np.float32)
        self.dist = None
        if self.kind == "kld":
            clicks = rows["clicks"].to_numpy(np.float64)
            smooth = smoothed_ctr(clicks, imp)
            self.edges = ctr_edges(tr_ctr, model_cfg.buckets, weights=tr_imp)
            self.centres = bucket_centres(self.edges)
            self.dist = lognormal_buckets(smooth, binomial_log_sigma(smooth, imp), self.edges)
            self.prior = self.dist[train_idx].mean(0)

    @classmethod
    def from_prepared(cls, prepared: Any, model_cfg: M2FNConfig) -> Targets:
        return cls(model_cfg, prepared.rows, prepared.split("train"))

    def init_model(self, model: Any) -> None:
        import torch

        if self.kind == "kld":
            model.centres.copy_(torch.from_numpy(self.centres.astype(np.float32)))
            model.init_output(self.mean_ctr, torch.from_numpy(self.prior))
        else:
            model.init_output(self.mean_ctr)

    def loss(self, model: Any, logits: Any, batch: dict[str, Any]) -> Any:
        from creative4u.m2fn.losses import kld_loss, weighted_mse

        if self.kind == "kld":
            return kld_loss(logits, batch["dist"])
        pred = model.ctr(logits) / self.ctr_scale
        return weighted_mse(pred, batch["value"], batch["weight"])


class CellDataset:
    """Training cells as batches of tensors; `__getitems__` gathers a whole batch at once."""

    def __init__(self, prepared: Any, targets: Targets, idx: np.ndarray):
        import torch

        self.idx = idx
        self.pixels = torch.from_numpy(prepared.pixels)
        self.image_index = torch.from_numpy(prepared.image_index[idx])
        self.aux = torch.from_numpy(prepared.aux[idx])
        self.value = torch.from_numpy(targets.value[idx])
        self.weight = torch.from_numpy(targets.weight[idx])
        self.dist = torch.from_numpy(targets.dist[idx]) if targets.dist is not None else None

    def __len__(self) -> int:
        return len(self.idx)

    def __getitems__(self, items: list[int]) -> dict[str, Any]:
        import torch

        i = torch.as_tensor(items, dtype=torch.long)
        batch = {
            "pixels": self.pixels[self.image_index[i]],
            "aux": self.aux[i],
            "value": self.value[i],
            "weight": self.weight[i],
        }
        if self.dist is not None:
            batch["dist"] = self.dist[i]
        return batch

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.__getitems__([item])


class EpochSampler:
    """A seeded permutation per epoch: the order of epoch e is the same on every run, so a
    resumed run skips exactly the batches the interrupted one had seen."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        import torch

        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def _identity(batch: Any) -> Any:
    return batch


def _hide_context(aux: Any, blocks: list[tuple[int, int, Any]], p: float) -> Any:
    """Replace each context field, independently per cell with probability p, by its missing
    encoding (the training average)."""
    import torch

    if p <= 0 or not blocks:
        return aux
    aux = aux.clone()
    for start, stop, missing in blocks:
        hide = torch.rand(aux.shape[0]) < p
        if hide.any():
            aux[hide, start:stop] = missing.to(aux.dtype)
    return aux


def _validate(
    model: Any,
    prepared: Any,
    val_idx: np.ndarray,
    epoch: int,
    st: dict[str, Any],
    state_dir: Path,
    accelerator: Any,
) -> None:
    """Validation after an epoch (and every `eval_steps`): the cells' SPRC, and with
    `select_on=pairs` the validation pairs' accuracy; the best point's weights are kept in
    OUT/state."""
    from safetensors.torch import save_file

    from creative4u.m2fn.evaluate import correlations, pair_metrics, pair_set_ctrs, predict

    if not accelerator.is_main_process:
        return
    cfg = prepared.cfg
    rec: dict[str, Any] = {"epoch": epoch, "step": st["step"]}
    sprc = None
    if len(val_idx):
        pred = predict(model, prepared.pixels, prepared.image_index[val_idx], prepared.aux[val_idx])
        sprc = correlations(pred, prepared.rows["ctr"].to_numpy()[val_idx])["sprc"]
        rec["validation_sprc"] = sprc
    score = sprc
    if cfg.select_on == "pairs":
        pairs = prepared.pair_set("validation")
        score = None
        if pairs is not None and len(pairs):
            score = pair_metrics(pair_set_ctrs(model, pairs), pairs.labels, 1.0)["pair_accuracy"]
            rec["validation_pair_accuracy"] = score
    st["history"].append(rec)
    best = st.get("best_score", st["best_sprc"])
    better = best is None or (score is not None and score > best)
    if better:
        st["best_sprc"], st["best_epoch"] = sprc, epoch
        st["best_score"], st["best_step"] = score, st["step"]
        state_dir.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(state_dir / BEST))


def _warmup_cosine(total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return f


def _check_out_dir(
    out: Path, state_dir: Path, model_cfg: M2FNConfig, cfg: TrainConfig, main: bool
) -> bool:
    """True to resume. OUT must be new, empty, hold a resumable run of the same model, or be
    forced (which discards the old state)."""
    saved = state_dir / TRAINER_STATE
    if cfg.force:
        if main and state_dir.exists():
            shutil.rmtree(state_dir)
        return False
    if saved.is_file():
        old = json.loads(saved.read_text())
        if old.get("model") != model_cfg.to_dict():
            raise ValueError(
                f"{out} holds a run of a different model configuration; use --force to start over"
            )
        return True
    # the feature cache is written before the first state: a run stopped in between left it
    leftovers = {p.name for p in out.iterdir()} - {FEATURES} if out.exists() else set()
    if leftovers:
        raise ValueError(f"{out} exists and is not empty (use --force to overwrite)")
    return False


def _bars(cfg: TrainConfig, accelerator: Any) -> bool:
    return cfg.progress and accelerator.is_local_main_process


def _progress(total: int, start: int, cfg: TrainConfig, accelerator: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=start,
        desc="training M2FN",
        unit="step",
        disable=not _bars(cfg, accelerator),
    )


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def print_metrics(m: dict[str, Any], out: str | Path) -> None:
    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}"

    print(
        f"M2FN [{m.get('name', m['modules'])}, {m.get('backbone', 'small')}, {m['loss']}] -> {out}\n"
        f"  test cells: {m['n_cells']}  SPRC {f(m['sprc'])}  LCC {f(m['lcc'])}"
        + (
            f"  (per creative x query: SPRC {f(m.get('sprc_grouped'))})"
            if "sprc_grouped" in m
            else ""
        )
        + f"\n  test pairs: {m['n_pairs']}  accuracy {f(m['pair_accuracy'])}"
    )


def main(argv: list[str] | None = None) -> int:
    from creative4u.m2fn.args import add_run_arguments, configs_from

    parser = argparse.ArgumentParser(
        prog="python -m creative4u.m2fn.train", description="Train the M2FN CTR model."
    )
    add_run_arguments(parser)
    model_cfg, cfg = configs_from(parser.parse_args(argv))
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)
    metrics = train(model_cfg, cfg)
    if metrics:
        print_metrics(metrics, cfg.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

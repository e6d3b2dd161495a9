"""The time budget under two processes (gloo on CPU): every rank stops at the main process's
step, even when the ranks' own clocks disagree about whether the budget is spent."""

from __future__ import annotations

import time
from pathlib import Path

import torch.multiprocessing as mp


def _rank(rank: int, init: str, out: str) -> None:
    import torch.distributed as dist
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from creative4u.training import time_budget_callback

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        cb = time_budget_callback(10.0)
        args = TrainingArguments(output_dir=out, report_to=[])
        state, stops = TrainerState(), []
        cb.on_train_begin(args, state, TrainerControl())
        # rank 1's clock says the budget is spent long ago; rank 0's says at step 3
        cb.start = time.time() - (100.0 if rank == 1 else 0.0)
        for step in range(5):
            if step == 3 and rank == 0:
                cb.start -= 100.0
            control = TrainerControl()
            cb.on_step_end(args, state, control)
            stops.append(control.should_training_stop)
            dist.barrier()  # a collective per step, as training has
        Path(out, f"rank{rank}.txt").write_text(",".join(str(int(s)) for s in stops))
    finally:
        dist.destroy_process_group()


def test_every_rank_stops_where_the_main_process_does(tmp_path: Path) -> None:
    init = f"file://{tmp_path / 'store'}"
    mp.spawn(_rank, args=(init, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = ((tmp_path / f"rank{r}.txt").read_text() for r in (0, 1))
    assert r0 == r1 == "0,0,0,1,1"

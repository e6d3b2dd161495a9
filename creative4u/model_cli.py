"""`creative4u model`: build a from-scratch model, and check that any model answers the protocol."""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import entry_points

from creative4u.paths import ensure_writable_dir


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="model_command", metavar="SUBCOMMAND")

    p = sub.add_parser(
        "init",
        help="build a from-scratch Qwen2.5-VL-architecture model folder (offline)",
        description="Build a randomly initialised Qwen2.5-VL-architecture model with its own "
        "byte-level BPE tokenizer, chat template and processor, saved as a Hugging Face folder.",
    )
    p.add_argument("out", help="output folder")
    p.add_argument(
        "--preset", choices=["tiny", "small"], default="small", help="model size (default: small)"
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="square image side in pixels, a multiple of 28 (default: the preset's)",
    )
    p.add_argument("--seed", type=int, default=0, help="initialisation seed (default: 0)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty output folder")
    p.set_defaults(func=run_init)

    p = sub.add_parser(
        "check",
        help="generate one protocol answer from a model and show how it parses",
        description="Load a model (a folder, a hub id, or a base plus a LoRA adapter), generate a "
        "protocol answer for two images with transformers or vLLM, and print the text and its parse.",
    )
    p.add_argument("model", help="model folder or hub id (or an adapter folder)")
    p.add_argument("--adapter", default=None, help="LoRA adapter folder on top of MODEL")
    p.add_argument("--engine", choices=["transformers", "vllm"], default="transformers")
    p.add_argument(
        "--images",
        nargs=2,
        metavar=("A", "B"),
        default=None,
        help="two image files (default: two generated swatches)",
    )
    p.add_argument("--query", default="red dress")
    p.add_argument("--title", default="Nova elegant red dress")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_check)

    # Subcommands that need a stage (e.g. `pretrain`, which trains on simulated creatives) are
    # plugged in by that stage through an entry-point group, so the core imports no stage.
    for ep in entry_points(group="creative4u.model_commands"):
        help_text = ep.name
        try:
            register_stage = ep.load()
            help_text = (register_stage.__doc__ or ep.name).strip().splitlines()[0]
        except ModuleNotFoundError:
            continue
        register_stage(sub.add_parser(ep.name, help=help_text, description=help_text))


def run_init(args: argparse.Namespace) -> int:
    from creative4u.model_factory import build

    out = ensure_writable_dir(args.out, args.force)
    t0 = time.time()
    build(out, preset=args.preset, image_size=args.image_size, seed=args.seed)
    card = json.loads((out / "creative4u_model.json").read_text())
    print(
        f"built {args.preset} model in {out} ({card['parameters']:,} parameters, "
        f"{card['tokenizer_vocab']}-token tokenizer, {card['image_size']}px images) in {time.time() - t0:.1f}s"
    )
    return 0


def _swatches():
    from PIL import Image, ImageDraw

    a = Image.new("RGB", (224, 224), (235, 235, 230))
    ImageDraw.Draw(a).rectangle([50, 40, 174, 190], fill=(205, 35, 45))
    b = Image.new("RGB", (224, 224), (40, 40, 60))
    ImageDraw.Draw(b).ellipse([90, 90, 134, 134], fill=(35, 85, 200))
    return a, b


def run_check(args: argparse.Namespace) -> int:
    import asyncio

    from creative4u.engines import GenParams, make_engine
    from creative4u.images import prepare_image
    from creative4u.protocol import build_messages

    image_a, image_b = args.images if args.images else _swatches()
    t0 = time.time()
    engine = make_engine(args.engine, args.model, args.adapter)

    async def one() -> tuple[float, object]:
        await engine.start()
        try:
            loaded = time.time() - t0
            a, b = (prepare_image(i, engine.processor) for i in (image_a, image_b))
            params = GenParams(
                max_tokens=args.max_new_tokens, token_ids=engine.answer_token_ids, logprobs=True
            )
            c = await engine.complete(build_messages(args.query, args.title, a, b), params)
            return loaded, c.generation()
        finally:
            await engine.close()

    loaded, out = asyncio.run(one())
    result = {
        "engine": args.engine,
        "model": args.model,
        "adapter": args.adapter,
        "text": out.text,
        "prompt_tokens": out.num_prompt_tokens,
        "generated_tokens": out.num_generated_tokens,
        "p_a": out.p_a,
        "verdict": out.verdict.to_dict(),
        "load_s": round(loaded, 2),
        "generate_s": round(time.time() - t0 - loaded, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        v = out.verdict
        print(
            f"engine: {args.engine}  prompt tokens: {out.num_prompt_tokens}  generated: {out.num_generated_tokens}"
        )
        print("text:", repr(out.text))
        print(
            f"winner: {v.winner}  well-formed: {v.well_formed}"
            + ("" if v.well_formed else f"  ({v.reason})")
        )
    sys.stdout.flush()
    return 0

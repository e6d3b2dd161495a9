"""Generate with vLLM in its own process (the engine spawns workers; tests stay isolated).

usage: python tests/scripts/vllm_generate.py MODEL [ADAPTER] IMAGE_A IMAGE_B OUT.json
Writes {"base": [...], "adapter": [...]} with text, prompt token count and P(A), from the
serving engine (`creative4u.engines.LocalEngine`) with and without the adapter.
"""

import asyncio
import json
import sys

from creative4u.engines import GenParams, LocalEngine
from creative4u.images import prepare_image
from creative4u.protocol import build_messages


async def main() -> None:
    args = sys.argv[1:]
    model, adapter = args[0], (args[1] if len(args) == 5 else None)
    image_a, image_b, out = args[-3:]
    engine = LocalEngine.from_model(model, adapter, max_model_len=2048)
    await engine.start()
    try:
        a, b = (prepare_image(i, engine.processor) for i in (image_a, image_b))
        chat = build_messages("red dress", "Nova elegant red dress", a, b)

        async def rows(use_adapter: bool) -> list[dict]:
            params = GenParams(
                max_tokens=16,
                token_ids=engine.answer_token_ids,
                logprobs=True,
                use_adapter=use_adapter,
            )
            g = (await engine.complete(chat, params)).generation()
            return [
                {
                    "text": g.text,
                    "prompt_tokens": g.num_prompt_tokens,
                    "generated_tokens": g.num_generated_tokens,
                    "p_a": g.p_a,
                }
            ]

        result = {"base": await rows(False)}
        if adapter:
            result["adapter"] = await rows(True)
    finally:
        await engine.close()
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    asyncio.run(main())

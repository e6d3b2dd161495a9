"""Generate with vLLM in its own process (the engine spawns workers; tests stay isolated).

usage: python tests/scripts/vllm_generate.py MODEL [ADAPTER] IMAGE_A IMAGE_B OUT.json
Writes {"base": [...], "adapter": [...]} with text, prompt token count and P(A).
"""

import json
import sys

from creative4u.generation import PairRequest, VLLMGenerator


def main() -> None:
    args = sys.argv[1:]
    model, adapter = args[0], (args[1] if len(args) == 5 else None)
    image_a, image_b, out = args[-3:]
    gen = VLLMGenerator(model, adapter, max_model_len=2048)
    reqs = [PairRequest("red dress", "Nova elegant red dress", image_a, image_b)]

    def rows(use_adapter: bool) -> list[dict]:
        return [
            {
                "text": g.text,
                "prompt_tokens": g.num_prompt_tokens,
                "generated_tokens": g.num_generated_tokens,
                "p_a": g.p_a,
            }
            for g in gen.generate(reqs, max_new_tokens=16, use_adapter=use_adapter)
        ]

    result = {"base": rows(False)}
    if adapter:
        result["adapter"] = rows(True)
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()

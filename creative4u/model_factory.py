"""Build a from-scratch Qwen2.5-VL-architecture model, offline, as a normal Hugging Face folder.

No pretrained weights can be downloaded in the places this product is built and tested, so the
factory makes the same architecture at small sizes: a byte-level BPE tokenizer trained on the
protocol and ad text, the Qwen chat template, the Qwen2.5-VL processor and randomly initialised
weights. Everything downstream loads the folder with the ordinary Auto classes and vLLM, exactly
as it would load `Qwen/Qwen2.5-VL-7B-Instruct`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from creative4u.lexicon import tokenizer_corpus
from creative4u.protocol import (
    DIMENSION_IDS,
    DimensionVerdict,
    Verdict,
    build_messages,
    protocol_instructions,
    render,
    user_interest_text,
)

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2-VL's chat layout, with `{% generation %}` around assistant turns so that trainers can
# mask the loss to the assistant's tokens (TRL's assistant_only_loss).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Preset:
    """Sizes of one from-scratch model. Head sizes are >= 32 so vLLM's CPU attention accepts them."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vision_hidden_size: int
    vision_depth: int
    vision_heads: int
    vision_intermediate_size: int
    image_size: int
    max_position_embeddings: int = 4096


PRESETS: dict[str, Preset] = {
    # builds in seconds; what the tests use
    "tiny": Preset(1024, 64, 2, 2, 1, 128, 64, 2, 2, 128, image_size=56),
    # the demo's default: learns the CreativeSim task in minutes on two CPU cores
    "small": Preset(2048, 256, 4, 4, 2, 768, 128, 4, 2, 384, image_size=112),
}


def mrope_section(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies over (time, height, width) as Qwen2.5-VL does (1:1.5:1.5)."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def _as_trained(text: str) -> str:
    """Protocol text in the wording the tokenizer was trained on: comparison lines verdict first
    (`Q3 query match: A>B - reason`). The protocol now writes the reason first; retraining the
    tokenizer on that would change every merge, and so the vocabulary of the shipped base, which
    must stay what `model init` builds. Byte-level BPE encodes the new wording all the same (its
    ` =>` is three tokens), so the tokenizer is kept and a change of it means a new base."""
    text = text.replace(": reason => A>B, A=B or A<B", ": A>B, A=B or A<B - reason")
    return re.sub(r"^(Q\d+ [a-z ]+): (.*) => (A[<>=]B)$", r"\1: \3 - \2", text, flags=re.M)


def _corpus() -> list[str]:
    """Protocol text plus ad text, the tokenizer's training data."""
    texts = tokenizer_corpus()
    # The fixed prompt is in every example: weight it so its words become single tokens.
    texts += [_as_trained(protocol_instructions())] * 500
    texts += [
        user_interest_text(q, t) + "\nCreative A:\nCreative B:"
        for q, t in zip(texts[1:800:4], texts[0:800:4], strict=False)
    ]
    words = texts[3::4]
    for i, reason in enumerate(words[:400]):
        dims = {
            d: DimensionVerdict(d, ("A>B", "A=B", "A<B")[(i + j) % 3], reason)  # type: ignore[arg-type]
            for j, d in enumerate(DIMENSION_IDS)
        }
        texts.append(
            _as_trained(
                render(
                    Verdict(
                        winner="AB"[i % 2],
                        identical=False,
                        indistinguishable=False,
                        dimensions=dims,
                    )
                )
            )
        )  # type: ignore[arg-type]
    return texts


def train_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer (any text encodes) wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:],
        chat_template=CHAT_TEMPLATE,
        model_max_length=32768,
        padding_side="left",
    )


def build(
    out: str | Path, preset: str = "tiny", image_size: int | None = None, seed: int = 0
) -> Path:
    """Create the model folder `out` (config, weights, tokenizer, processor, chat template)."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    size = image_size or p.image_size
    if size % 28:
        raise ValueError(f"--image-size must be a multiple of 28 (patch 14 x merge 2), got {size}")
    head_dim = p.hidden_size // p.num_heads
    if head_dim < 32 or p.vision_hidden_size // p.vision_heads < 32:
        raise ValueError("head size must be >= 32 for vLLM's CPU attention")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    tokenizer = train_tokenizer(p.vocab_size)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vocab = ((len(tokenizer) + 63) // 64) * 64
    text_config = dict(
        vocab_size=vocab,
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        max_position_embeddings=p.max_position_embeddings,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": mrope_section(head_dim),
        },
        tie_word_embeddings=True,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision_config = dict(
        depth=p.vision_depth,
        hidden_size=p.vision_hidden_size,
        intermediate_size=p.vision_intermediate_size,
        num_heads=p.vision_heads,
        out_hidden_size=p.hidden_size,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=list(range(p.vision_depth - 1, p.vision_depth, 1)),
    )
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    model.save_pretrained(out)

    # A square creative becomes exactly size x size. The lower bound is a quarter of that, not
    # equal to it: with min == max, a non-square image has no size the processor's resize maps to
    # itself, and the pixels would then depend on who resized last.
    pixels = size * size
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=pixels // 4, max_pixels=pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)

    n_params = sum(t.numel() for t in model.parameters())
    card = {
        "preset": preset,
        "image_size": size,
        "seed": seed,
        "parameters": n_params,
        "tokenizer_vocab": len(tokenizer),
        "sizes": asdict(p),
    }
    (out / "creative4u_model.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / "README.md").write_text(
        f"# From-scratch Qwen2.5-VL ({preset})\n\n"
        f"Built offline by `creative4u model init --preset {preset} --image-size {size} --seed {seed}`: "
        f"random weights, {n_params:,} parameters, a {len(tokenizer)}-token byte-level BPE "
        f"tokenizer, images resized to {size}x{size} ({(size // 28) ** 2} visual tokens each).\n"
        "It has the Qwen2.5-VL architecture and loads with `AutoModelForImageTextToText`, "
        "`AutoProcessor` and vLLM like any Qwen2.5-VL checkpoint.\n"
    )
    return out


def example_messages() -> list[dict]:
    """A protocol prompt for smoke checks of a freshly built model."""
    return build_messages("red dress", "Nova elegant red dress")

"""Everything the API enforces, in one place, so that the limits are visible and testable.

The defaults are sized for ad creatives (a few megabytes, a few megapixels each) and for a CPU or
single-GPU engine; every one has a `creative4u serve` flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MiB = 1024 * 1024


@dataclass
class Limits:
    """Bounds on one request. Anything beyond them is refused with a 4xx, never truncated."""

    max_image_bytes: int = 8 * MiB
    """Encoded size of one creative (after base64 decoding)."""
    max_image_pixels: int = 25_000_000
    """Decoded size of one creative; larger images are refused before they are decompressed."""
    max_body_bytes: int = 64 * MiB
    """Whole request body, checked while it streams in."""
    max_creatives: int = 16
    """Creatives per `/v1/rank` request (the work grows with the square of this number)."""
    max_text_chars: int = 1000
    """Length of the query and of the title."""
    max_prompt_chars: int = 16_000
    """Total text of a chat completion request."""
    max_tokens: int = 1024
    """Largest `max_tokens` a request may ask for."""
    max_images_per_prompt: int = 2
    """Images in one chat completion (the engine is started for two per prompt)."""


@dataclass
class ServeConfig:
    """How the API behaves: names, auth, limits, concurrency and defaults."""

    served_model_name: str = "creative4u"
    api_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    default_max_tokens: int = 256
    """The protocol answer is about 200 tokens; a trained model stops earlier on its own."""
    max_concurrency: int | None = None
    """Requests worked on at once (None: as many as fill the engine's batch, two sequences per
    select; `serve.admission.admission_limits`). A rank holds up to N*(N-1) generations."""
    max_queue: int | None = None
    """Requests allowed to wait for a slot, beyond which the API answers 429 at once (None:
    `QUEUE_ROUNDS` full batches' worth)."""
    request_timeout_s: float = 300.0
    allow_url_hosts: tuple[str, ...] = ()
    """Hosts whose http(s) image URLs may be fetched; empty means URL fetching is off."""
    url_timeout_s: float = 10.0
    probe_answer: bool = True
    """When an output never reaches `<answer>`, read P(A)/P(B) by appending it (labelled)."""

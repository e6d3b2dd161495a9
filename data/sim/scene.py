"""What a CreativeSim creative shows, in the perception vocabulary the pretrained base speaks.

The pretraining corpus describes creatives with these slot values and the scene teacher writes
its reasons with them, so the words a rationale uses are the words the base already grounds in
pixels. Both read the simulator's scene record (what was drawn), never clicks or CTRs.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

from creative4u.perception import TEXT_ELEMENTS


def visible_factors(c: Any) -> dict[str, str]:
    """A creative's design factors as the perception tasks name them (`c` is a `Creative` or any
    object with its fields).

    Text is listed only when it is set legibly: illegible type is 3-4 px high at the small model's
    resolution, so a description can only say that some faint text is there."""
    present = [
        name
        for name, value in zip(TEXT_ELEMENTS, (c.selling_point, c.price, c.cta), strict=True)
        if value
    ]
    if not present:
        text = "none"
    elif c.legible:
        text = ", ".join(present)
    else:
        text = "faint"
    return {
        "colour": c.shown_colour,
        "style": c.style,
        "cue": c.intent or "none",
        "text": text,
        "person": c.person,
        "layout": {"pip": "picture-in-picture"}.get(c.layout, c.layout),
        "subject": c.size,
        # a cropped subject is pushed to the edge, whatever its vertical placement
        "position": "centred" if c.centred and not c.cropped else "off-centre",
        "crop": "cropped" if c.cropped else "complete",
        "colours": "clashing" if c.clash else "harmonious",
        "background": "cluttered" if c.clutter else "plain",
    }


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v == ""


def factors_from_record(row: dict[str, Any]) -> dict[str, str]:
    """`visible_factors` of one row of a world's `creatives.parquet` (parquet stores a creative's
    absent text or cue as null/NaN)."""
    fields = {k: (None if _missing(v) else v) for k, v in row.items()}
    return visible_factors(SimpleNamespace(**fields))

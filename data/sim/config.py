"""CreativeSim's tunable parameters, in one place, with the defaults the demo relies on.

The defaults are chosen so that the task is learnable but not trivial: an oracle that knows the
true CTRs labels nearly every mined pair right, no single design factor predicts the label much
better than chance, and the user's query changes the winner often. `creative4u data simulate`
measures and reports all three on every build.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class SimConfig:
    products: int = 200
    creatives: int = 6  # per product
    queries: int = 6  # per product: colour, style and intent queries, in turn
    seed: int = 0
    image_size: int = 448  # rendered size; models see them resized

    # --- the hidden click model: logit(CTR) = base + sum_d weight_d * score_d + context + noise
    base_logit: float = -5.3
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "Q3": 0.8,  # query match (creative x user interest)
            "Q4": 0.6,  # title match
            "Q5": 0.7,  # text in image
            "Q6": 0.6,  # models and props
            "Q7": 0.5,  # layout
            "Q8": 0.7,  # product subject
            "Q9": 0.6,  # background
        }
    )
    creative_noise: float = 0.15  # sd of a hidden per-creative logit effect (what no image shows)
    cell_noise: float = 0.10  # sd of a per-(creative, context) logit effect
    young_style_boost: float = 0.3  # 18-24 audiences click cute and sporty styles more
    position_decay: float = 0.18  # logit lost per slot below the top

    # --- how the log is sampled
    impressions_median: int = 4000  # per creative and query, summed over context cells
    impressions_spread: float = 0.7  # lognormal sigma: some cells fall below the 1,000 threshold
    cells_per_creative_query: int = 16
    context_draws: int = 256  # fixed context sample that defines the "true" CTR

    # --- design-factor probabilities
    p_title_colour: float = 0.6  # the creative shows the product in the title's colour
    p_clutter: float = 0.35
    p_clash: float = 0.35
    p_legible: float = 0.6

    def to_dict(self) -> dict:
        return asdict(self)

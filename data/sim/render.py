"""Draw a CreativeSim creative with PIL and real fonts, one visible cue per design factor.

Creatives are rendered at full size (448 px by default) as a real model would see them; every
factor the demo relies on stays visible when the small model looks at them at 112 px: colours,
shapes and sizes carry the signal, and text is set large and bold when legible, small and faint
when not.
"""

from __future__ import annotations

import colorsys
import math
import random
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from creative4u.lexicon import COLOURS
from data.sim.world import Creative, Product

FONT_DIR = "/usr/share/fonts/truetype/dejavu"


@lru_cache(maxsize=64)
def font(size: int, bold: bool = True) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(f"{FONT_DIR}/{name}", size)
    except OSError:
        return ImageFont.load_default(size)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(int(x * (1 - t) + y * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _background_colour(
    c: Creative, product_rgb: tuple[int, int, int], rng: random.Random
) -> tuple[int, int, int]:
    """Harmonious: a pale tint near the product's hue (or neutral). Clashing: a saturated
    complementary colour."""
    h, s, v = colorsys.rgb_to_hsv(*(x / 255 for x in product_rgb))
    if c.clash:
        r, g, b = colorsys.hsv_to_rgb((h + 0.5 + rng.uniform(-0.08, 0.08)) % 1.0, 0.95, 0.95)
        return int(r * 255), int(g * 255), int(b * 255)
    r, g, b = colorsys.hsv_to_rgb((h + rng.uniform(-0.05, 0.05)) % 1.0, 0.12, 0.96)
    return int(r * 255), int(g * 255), int(b * 255)


def _style(d: ImageDraw.ImageDraw, style: str, size: int, bg: tuple[int, int, int]) -> None:
    if style == "sporty":  # bold diagonal stripes
        col = _mix(bg, (30, 30, 30), 0.35)
        for x in range(-size, size, size // 6):
            d.polygon(
                [(x, size), (x + size // 14, size), (x + size // 14 + size, 0), (x + size, 0)],
                fill=col,
            )
    elif style == "cute":  # big pastel dots
        col = _mix(bg, (255, 120, 190), 0.6)
        step = size // 5
        for i in range(6):
            for j in range(6):
                if (i + j) % 2 == 0:
                    cx, cy = i * step + step // 2, j * step + step // 2
                    d.ellipse(
                        [cx - step // 5, cy - step // 5, cx + step // 5, cy + step // 5], fill=col
                    )
    elif style == "luxury":  # dark corners and thin gold rules
        gold = (212, 175, 55)
        t = size // 5
        for x0, y0 in [(0, 0), (size - t, 0), (0, size - t), (size - t, size - t)]:
            d.rectangle([x0, y0, x0 + t, y0 + t], fill=(20, 20, 25))
        d.line([(t, size // 14), (size - t, size // 14)], fill=gold, width=max(2, size // 90))
        d.line(
            [(t, size - size // 14), (size - t, size - size // 14)],
            fill=gold,
            width=max(2, size // 90),
        )
    elif style == "vintage":  # sepia wash and brown ornaments
        col = (112, 66, 20)
        r = size // 9
        for cx, cy in [(r, r), (size - r, r), (r, size - r), (size - r, size - r)]:
            d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=col, width=max(3, size // 60))
            d.ellipse([cx - r // 3, cy - r // 3, cx + r // 3, cy + r // 3], fill=col)
    # minimalist: nothing at all


def _clutter(d: ImageDraw.ImageDraw, size: int, rng: random.Random) -> None:
    for _ in range(28):
        x, y = rng.randrange(size), rng.randrange(size)
        r = rng.randrange(size // 40, size // 14)
        col = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            d.rectangle([x, y, x + r, y + r // 2 + 2], fill=col)
        else:
            d.ellipse([x, y, x + r, y + r], fill=col)


def _product(
    d: ImageDraw.ImageDraw, category: str, box: tuple[int, int, int, int], rgb: tuple[int, int, int]
) -> None:
    """A simple silhouette per category, painted in the shown colour with a dark outline."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    ol = _mix(rgb, (0, 0, 0), 0.6)
    lw = max(2, w // 40)
    if category == "apparel":
        pts = [
            (x0 + 0.3 * w, y0),
            (x0 + 0.7 * w, y0),
            (x0 + w, y0 + 0.25 * h),
            (x0 + 0.82 * w, y0 + 0.38 * h),
            (x0 + 0.75 * w, y0 + 0.3 * h),
            (x0 + 0.9 * w, y1),
            (x0 + 0.1 * w, y1),
            (x0 + 0.25 * w, y0 + 0.3 * h),
            (x0 + 0.18 * w, y0 + 0.38 * h),
            (x0, y0 + 0.25 * h),
        ]
        d.polygon(pts, fill=rgb, outline=ol, width=lw)
    elif category == "shoes":
        d.polygon(
            [
                (x0, y0 + 0.45 * h),
                (x0 + 0.45 * w, y0 + 0.35 * h),
                (x0 + 0.6 * w, y0 + 0.6 * h),
                (x1, y0 + 0.7 * h),
                (x1, y1 - 0.15 * h),
                (x0, y1 - 0.15 * h),
            ],
            fill=rgb,
            outline=ol,
            width=lw,
        )
        d.rectangle(
            [x0, y1 - 0.15 * h, x1, y1 - 0.05 * h], fill=(245, 245, 245), outline=ol, width=lw
        )
    elif category == "bags":
        d.arc(
            [x0 + 0.25 * w, y0, x0 + 0.75 * w, y0 + 0.5 * h],
            180,
            360,
            fill=ol,
            width=max(4, w // 18),
        )
        d.rounded_rectangle(
            [x0, y0 + 0.25 * h, x1, y1], radius=w // 10, fill=rgb, outline=ol, width=lw
        )
    elif category == "home":
        d.rounded_rectangle(
            [x0 + 0.1 * w, y0 + 0.1 * h, x0 + 0.75 * w, y1],
            radius=w // 12,
            fill=rgb,
            outline=ol,
            width=lw,
        )
        d.arc(
            [x0 + 0.6 * w, y0 + 0.3 * h, x1, y0 + 0.75 * h], 270, 90, fill=ol, width=max(4, w // 14)
        )
    elif category == "beauty":
        d.rectangle(
            [x0 + 0.3 * w, y0 + 0.45 * h, x0 + 0.7 * w, y1], fill=(40, 40, 45), outline=ol, width=lw
        )
        d.polygon(
            [
                (x0 + 0.33 * w, y0 + 0.45 * h),
                (x0 + 0.33 * w, y0 + 0.1 * h),
                (x0 + 0.67 * w, y0),
                (x0 + 0.67 * w, y0 + 0.45 * h),
            ],
            fill=rgb,
            outline=ol,
            width=lw,
        )
    elif category == "electronics":
        d.arc([x0, y0, x1, y0 + 1.2 * h], 180, 360, fill=rgb, width=max(6, w // 9))
        d.rounded_rectangle(
            [x0, y0 + 0.45 * h, x0 + 0.3 * w, y1], radius=w // 12, fill=rgb, outline=ol, width=lw
        )
        d.rounded_rectangle(
            [x1 - 0.3 * w, y0 + 0.45 * h, x1, y1], radius=w // 12, fill=rgb, outline=ol, width=lw
        )
    else:  # sports
        d.rectangle([x0 + 0.15 * w, y0 + 0.42 * h, x1 - 0.15 * w, y0 + 0.58 * h], fill=ol)
        for bx in (x0, x1 - 0.25 * w):
            d.rounded_rectangle(
                [bx, y0 + 0.1 * h, bx + 0.25 * w, y1 - 0.1 * h],
                radius=w // 16,
                fill=rgb,
                outline=ol,
                width=lw,
            )


def _person(d: ImageDraw.ImageDraw, x: int, y: int, s: int) -> None:
    skin, cloth = (224, 172, 105), (60, 60, 70)
    d.ellipse([x - s // 6, y, x + s // 6, y + s // 3], fill=skin)
    d.rounded_rectangle([x - s // 4, y + s // 3, x + s // 4, y + s], radius=s // 8, fill=cloth)


def _prop(d: ImageDraw.ImageDraw, x: int, y: int, s: int) -> None:
    d.polygon(
        [
            (x - s // 4, y + s // 2),
            (x + s // 4, y + s // 2),
            (x + s // 5, y + s),
            (x - s // 5, y + s),
        ],
        fill=(150, 90, 50),
    )
    for dx, dy in [(-s // 6, s // 6), (s // 6, s // 5), (0, 0)]:
        d.ellipse([x + dx - s // 6, y + dy, x + dx + s // 6, y + dy + s // 3], fill=(40, 140, 60))


def _intent(d: ImageDraw.ImageDraw, intent: str, size: int) -> None:
    if intent == "sale":  # red burst "-30%" at the top left
        cx, cy, r = size // 6, size // 4, size // 8
        pts = []
        for i in range(16):
            rr = r if i % 2 == 0 else int(r * 0.7)
            a = i / 16 * 2 * math.pi
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        d.polygon(pts, fill=(220, 20, 30))
        d.text((cx, cy), "-30%", font=font(size // 22), fill=(255, 255, 255), anchor="mm")
    elif intent == "gift":  # ribbon across the top-left corner with a bow
        col = (200, 30, 120)
        d.polygon([(0, size // 6), (size // 6, 0), (size // 4, 0), (0, size // 4)], fill=col)
        bx, by = size // 8, size // 8
        d.ellipse([bx - size // 14, by - size // 28, bx, by + size // 28], fill=col)
        d.ellipse([bx, by - size // 28, bx + size // 14, by + size // 28], fill=col)
    elif intent == "new":  # yellow NEW tag
        x, y = size // 20, size // 6
        d.rectangle([x, y, x + size // 5, y + size // 11], fill=(250, 215, 0))
        d.text(
            (x + size // 10, y + size // 22),
            "NEW",
            font=font(size // 18),
            fill=(20, 20, 20),
            anchor="mm",
        )


def _text(d: ImageDraw.ImageDraw, c: Creative, size: int) -> None:
    big, small = font(size // 14), font(size // 34, bold=False)
    if c.legible:
        fg, bg = (255, 255, 255), (25, 25, 30)
    else:
        fg, bg = (190, 190, 190), (170, 170, 170)
    f = big if c.legible else small
    if c.selling_point:
        if c.legible:
            d.rectangle([0, size - size // 4 - size // 9, size, size - size // 4], fill=bg)
        d.text(
            (size // 2, size - size // 4 - size // 18),
            c.selling_point,
            font=f,
            fill=fg if c.legible else (150, 150, 150),
            anchor="mm",
        )
    if c.price:
        cx, cy, r = size - size // 7, size // 4, size // 9
        if c.legible:
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(230, 40, 40))
            d.text((cx, cy), c.price, font=font(size // 16), fill=(255, 255, 255), anchor="mm")
        else:
            d.text((cx, cy), c.price, font=small, fill=(150, 150, 150), anchor="mm")
    if c.cta:
        x0, y0, x1, y1 = size // 4, size - size // 7, 3 * size // 4, size - size // 30
        if c.legible:
            d.rounded_rectangle([x0, y0, x1, y1], radius=size // 30, fill=(255, 140, 0))
            d.text(
                ((x0 + x1) // 2, (y0 + y1) // 2),
                c.cta,
                font=font(size // 18),
                fill=(20, 20, 20),
                anchor="mm",
            )
        else:
            d.text(
                ((x0 + x1) // 2, (y0 + y1) // 2),
                c.cta,
                font=small,
                fill=(150, 150, 150),
                anchor="mm",
            )


def render(c: Creative, p: Product, size: int = 448) -> Image.Image:
    rng = random.Random(c.bg_hue_seed)
    rgb = COLOURS[c.shown_colour]
    bg = _background_colour(c, rgb, rng)
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    _style(d, c.style, size, bg)
    if c.clutter:
        _clutter(d, size, rng)

    # product subject: size, position, completeness
    frac = {"small": 0.28, "medium": 0.45, "large": 0.62}[c.size]
    w = int(size * frac)
    cx, cy = size // 2, int(size * 0.48)
    if not c.centred:
        cx += rng.choice([-1, 1]) * int(size * 0.2)
        cy += rng.choice([-1, 1]) * int(size * 0.12)
    if c.cropped:
        cx = int(size - w * 0.3) if rng.random() < 0.5 else int(w * 0.3)
    box = (cx - w // 2, cy - w // 2, cx + w // 2, cy + w // 2)
    _product(d, p.category, box, rgb)

    if c.person == "model":
        side = 1 if cx < size // 2 else -1
        _person(d, size // 2 + side * int(size * 0.3), int(size * 0.3), int(size * 0.42))
    elif c.person == "prop":
        side = 1 if cx < size // 2 else -1
        _prop(d, size // 2 + side * int(size * 0.33), int(size * 0.5), int(size * 0.22))

    # layout
    if c.layout == "bordered":
        b = size // 28
        d.rectangle([0, 0, size - 1, size - 1], outline=(245, 245, 245), width=b)
        d.rectangle([b, b, size - 1 - b, size - 1 - b], outline=(40, 40, 40), width=max(2, b // 3))
    elif c.layout == "pip":
        s = size // 4
        x0, y0 = size - s - size // 30, size // 30
        d.rectangle(
            [x0, y0, x0 + s, y0 + s],
            fill=(250, 250, 250),
            outline=(40, 40, 40),
            width=max(2, size // 120),
        )
        _product(d, p.category, (x0 + s // 6, y0 + s // 6, x0 + s - s // 6, y0 + s - s // 6), rgb)
    elif c.layout == "crowded":
        for i in range(5):
            x = rng.randrange(size - size // 4)
            y = rng.randrange(size - size // 6)
            d.rectangle(
                [x, y, x + size // 4, y + size // 8],
                fill=tuple(rng.randrange(60, 220) for _ in range(3)),
                outline=(0, 0, 0),
            )
            del i

    if c.intent:
        _intent(d, c.intent, size)
    _text(d, c, size)
    return img

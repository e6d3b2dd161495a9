"""M2FN's parts: every fusion module matters, the losses are the paper's, the auxiliary encoding
handles partial contexts, checkpoints and the VGG-19 path load what was saved."""

from __future__ import annotations

import math
import zlib
from dataclasses import replace as dataclasses_replace
from pathlib import Path

import numpy as np
import pytest
import torch

from creative4u.m2fn.aux import AuxEncoder
from creative4u.m2fn.config import M2FNConfig
from creative4u.m2fn.losses import (
    bucket_centres,
    ctr_edges,
    kld_loss,
    lognormal_buckets,
    weighted_mse,
)
from creative4u.m2fn.model import M2FN, ConditionalBatchNorm2d, SpatialAttention

AUX_DIM = 12
SMALL = {"image_size": 32, "widths": [8, 16, 16], "low_hidden": 8, "att_hidden": 16}


def randomised(model: torch.nn.Module) -> torch.nn.Module:
    """Every parameter drawn from a generator seeded by its name, so two configurations share the
    values of the parameters they share, and no zero-initialised layer hides a module."""
    for name, p in model.named_parameters():
        g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval()


def inputs(n: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    px = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return px, torch.rand(n, AUX_DIM, generator=g)


@pytest.mark.parametrize("module", ["aux", "low", "att", "high"])
def test_each_module_changes_the_output(module: str) -> None:
    full = randomised(M2FN(M2FNConfig(**SMALL), AUX_DIM))
    off = {"aux": dict(aux=False, low=False, att=False, high=False)}.get(module, {module: False})
    ablated = randomised(M2FN(M2FNConfig(**SMALL, **off), AUX_DIM))
    px, aux = inputs()
    with torch.no_grad():
        a, b = full(px, aux), ablated(px, aux)
    assert a.shape == b.shape == (4, 1)
    assert not torch.allclose(a, b, atol=1e-4), f"switching {module} off changed nothing"


@pytest.mark.parametrize("on", ["low", "att", "high"])
def test_each_fusion_module_alone_makes_the_image_path_depend_on_aux(on: str) -> None:
    """With only one fusion module on (and no concatenation shortcut to hide behind), the
    auxiliary vector must still reach the output through that module."""
    flags = {m: m == on for m in ("low", "att", "high")}
    model = randomised(M2FN(M2FNConfig(**SMALL, **flags), AUX_DIM))
    px, aux = inputs()
    with torch.no_grad():
        if on == "high":
            base = model(px, aux)
            assert not torch.allclose(base, model(px, aux.flip(0)), atol=1e-5)
        else:
            # the image features before the head (the concatenated aux removed)
            feats = model.features(px, aux)[:, : model.cfg.image_hidden]
            other = model.features(px, aux.flip(0))[:, : model.cfg.image_hidden]
            assert not torch.allclose(feats, other, atol=1e-5)


def test_image_only_model_ignores_aux() -> None:
    model = randomised(M2FN(M2FNConfig(**SMALL, aux=False, low=False, att=False, high=False), 5))
    px, aux = inputs()
    with torch.no_grad():
        assert torch.equal(model(px, aux), model(px, torch.zeros_like(aux)))


def test_cbn_starts_as_batch_norm_and_then_follows_aux() -> None:
    cbn = ConditionalBatchNorm2d(6, AUX_DIM, 8).train()
    x = torch.randn(5, 6, 4, 4)
    aux1, aux2 = torch.rand(5, AUX_DIM), torch.rand(5, AUX_DIM)
    bn = torch.nn.BatchNorm2d(6, affine=False).train()
    assert torch.allclose(cbn(x, aux1), bn(x), atol=1e-5)
    torch.nn.init.normal_(cbn.mlp[-1].weight)
    assert not torch.allclose(cbn(x, aux1), cbn(x, aux2))


def test_attention_is_a_distribution_over_positions_that_aux_moves() -> None:
    att = randomised(SpatialAttention(8, AUX_DIM, 16))
    f = torch.randn(3, 8, 4, 4)
    w1 = att.weights(f, torch.rand(3, AUX_DIM))
    w2 = att.weights(f, torch.rand(3, AUX_DIM) * 5)
    assert w1.shape == (3, 16)
    assert torch.allclose(w1.sum(1), torch.ones(3))
    assert not torch.allclose(w1, w2)
    # the attended vector is the attention-weighted sum of the feature vectors
    aux = torch.rand(3, AUX_DIM)
    v = att(f, aux)
    manual = (f.flatten(2) * att.weights(f, aux)[:, None, :]).sum(-1)
    assert torch.allclose(v, manual, atol=1e-6)


def test_modules_need_aux() -> None:
    with pytest.raises(ValueError, match="need aux"):
        M2FNConfig(aux=False)
    assert M2FNConfig().modules_on == "OOOO"
    assert M2FNConfig(low=False, att=False).modules_on == "OxxO"


# ---- HCCM: the category prior and the hybrid CNN ---------------------------------------
CATEGORY = (3, 7)  # where the category one-hot lives in the test's auxiliary vector


def with_category(aux: torch.Tensor, index: list[int]) -> torch.Tensor:
    aux = aux.clone()
    aux[:, CATEGORY[0] : CATEGORY[1]] = 0.0
    aux[torch.arange(len(index)), CATEGORY[0] + torch.tensor(index)] = 1.0
    return aux


@pytest.mark.parametrize("module", ["cat_att", "cat_map"])
def test_each_category_module_changes_the_output_and_follows_the_category(module: str) -> None:
    base = randomised(M2FN(M2FNConfig(**SMALL), AUX_DIM, CATEGORY))
    model = randomised(M2FN(M2FNConfig(**SMALL, **{module: True}), AUX_DIM, CATEGORY))
    px, aux = inputs()
    aux = with_category(aux, [0, 1, 2, 3])
    with torch.no_grad():
        assert not torch.allclose(base(px, aux), model(px, aux), atol=1e-4)
        # the prior itself reads only the category block: another category, another map
        f = model.backbone.rest[: model.backbone.split_at](model.backbone.first(px.float()))
        cat = aux[:, CATEGORY[0] : CATEGORY[1]]
        prior = model.backbone.prior
        assert not torch.allclose(prior(f, cat), prior(f, cat.roll(1, dims=1)), atol=1e-5)


def test_category_attention_is_eq8_by_hand() -> None:
    from creative4u.m2fn.model import CategoryPrior

    prior = randomised(CategoryPrior(6, 4, (3, 3), 5, attention=True, prior_map=False))
    f = torch.randn(2, 6, 3, 3)
    v = torch.eye(4)[[1, 3]]
    mlp = prior.mlp
    m = torch.sigmoid(
        mlp(torch.cat([f.mean((2, 3)), v], 1)) + mlp(torch.cat([f.amax((2, 3)), v], 1))
    )
    assert torch.allclose(prior(f, v), f * m[:, :, None, None], atol=1e-6)
    assert ((m > 0) & (m < 1)).all()


def test_category_map_is_one_more_channel_holding_the_category_array() -> None:
    from creative4u.m2fn.model import CategoryPrior

    prior = randomised(CategoryPrior(6, 4, (3, 3), 5, attention=False, prior_map=True))
    f = torch.randn(2, 6, 3, 3)
    out = prior(f, torch.eye(4)[[2, 0]])
    assert out.shape == (2, 7, 3, 3) and torch.equal(out[:, :6], f)
    assert torch.equal(out[0, 6], prior.maps[2].view(3, 3))
    assert torch.equal(out[1, 6], prior.maps[0].view(3, 3))


def test_hybrid_keeps_the_fixed_cnn_and_trains_the_rest() -> None:
    """One optimiser step: with the hybrid on, conv1 and the layers before the split keep their
    weights and the rest moves; with it off, everything moves."""
    px, aux = inputs(8)
    moved = {}
    for hybrid in (False, True):
        torch.manual_seed(0)
        model = M2FN(M2FNConfig(**SMALL, hybrid=hybrid, split=1), AUX_DIM, CATEGORY).train()
        fixed = {id(p) for p in model.backbone.fixed_parameters()}
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        model(px, aux).pow(2).mean().backward()
        opt.step()
        params = dict(model.named_parameters())
        moved[hybrid] = {
            n: not torch.equal(before[n], params[n]) for n in before if id(params[n]) in fixed
        }
        assert any(not torch.equal(before[n], p) for n, p in params.items() if id(p) not in fixed)
    assert moved[False] and all(moved[False].values())
    assert moved[True].keys() == moved[False].keys() and not any(moved[True].values())


def test_hccm_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="category"):
        M2FNConfig(cat_att=True, categorical=["gender", "age"])
    with pytest.raises(ValueError, match="split must be within 0..1"):
        M2FNConfig(**SMALL, cat_map=True, split=2)
    with pytest.raises(ValueError, match="category block"):
        M2FN(M2FNConfig(**SMALL, cat_att=True), AUX_DIM)  # no category position given
    assert M2FNConfig(cat_att=True, hybrid=True).name == "OOOO+ch"
    assert M2FNConfig(low=False).name == "OxOO"


# ---- losses ------------------------------------------------------------------------------
def test_weighted_mse_is_eq2_and_weights_by_impressions() -> None:
    pred = torch.tensor([0.02, 0.05])
    target = torch.tensor([0.01, 0.01])
    w = torch.tensor([100.0, 300.0])
    expected = (100 * 0.01**2 + 300 * 0.04**2) / 2
    assert math.isclose(weighted_mse(pred, target, w).item(), expected, rel_tol=1e-5)
    # the constant prediction that minimises it is the impression-weighted mean CTR, not the mean
    ctr = torch.tensor([0.01, 0.03, 0.10])
    imp = torch.tensor([1000.0, 3000.0, 10.0])

    def slope(c: float) -> float:
        x = torch.tensor(c, requires_grad=True)
        weighted_mse(x.expand(3), ctr, imp).backward()
        return float(x.grad)

    assert slope(float((ctr * imp).sum() / imp.sum())) == pytest.approx(0.0, abs=1e-4)
    assert abs(slope(float(ctr.mean()))) > 1.0


def test_kld_loss_on_a_hand_computed_case() -> None:
    # p = (1/2, 1/2), q = softmax(0, ln 3) = (1/4, 3/4):
    # KLD = 1/2 ln(1/2 / 1/4) + 1/2 ln(1/2 / 3/4) = 1/2 ln(4/3)
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    target = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    # second row: p = (1, 0), q = (1/2, 1/2): KLD = ln 2 (0 log 0 counts as 0)
    expected = (0.5 * math.log(4 / 3) + math.log(2.0)) / 2
    assert math.isclose(kld_loss(logits, target).item(), expected, rel_tol=1e-6)
    assert kld_loss(torch.log(target[:1]), target[:1]).item() == pytest.approx(0.0, abs=1e-7)


def test_lognormal_buckets_by_hand() -> None:
    # LogNormal(ln 0.01, 1) with edges at 0.01 e^-1, 0.01, 0.01 e: the standard normal's masses
    edges = np.array([0.01 / math.e, 0.01, 0.01 * math.e])
    p = lognormal_buckets(np.array([0.01]), 1.0, edges)[0]
    phi1 = 0.5 * (1 + math.erf(1 / math.sqrt(2)))  # Phi(1)
    assert p == pytest.approx([1 - phi1, phi1 - 0.5, phi1 - 0.5, 1 - phi1], abs=1e-6)
    many = lognormal_buckets(np.array([0.001, 0.01, 0.5]), np.array([0.1, 0.5, 2.0]), edges)
    assert many.sum(1) == pytest.approx([1, 1, 1], abs=1e-6)
    e = ctr_edges(np.array([0.001, 0.002, 0.004, 0.008, 0.0]), 5, q=0.0)
    assert len(e) == 4 and e[0] == pytest.approx(0.001) and e[-1] == pytest.approx(0.008)
    c = bucket_centres(e)
    assert len(c) == 5 and np.all(np.diff(c) > 0)


# ---- auxiliary encoding ---------------------------------------------------------------
def test_aux_encoder_partial_context_and_round_trip() -> None:
    rows = {
        "month": [1, 2, 2, 2],
        "position": ["1", "2", 2.0, None],
        "query": ["red mug", "blue mug", "red lamp", ""],
        "ocr": ["SALE", "", "", ""],
    }
    enc = AuxEncoder.fit(rows, ["month", "position"], ["query", "ocr"], text_dim=32)
    assert enc.vocab == {"month": ["1", "2"], "position": ["1", "2"]}
    assert enc.dim == 2 + 2 + 32 + 32
    full = enc.encode([{"month": 2, "position": 1, "query": "red mug", "ocr": "SALE"}])[0]
    assert full[:4].tolist() == [0, 1, 1, 0]
    assert np.linalg.norm(full[4:36]) == pytest.approx(1.0, abs=1e-5)
    # a field the caller does not know (or a value never seen) is the training average
    part = enc.encode([{"month": 13, "query": "red mug"}])[0]
    assert part[:2] == pytest.approx([0.25, 0.75]) and part[2:4] == pytest.approx([1 / 3, 2 / 3])
    assert not part[36:].any()  # missing text: zero vector
    again = AuxEncoder.from_dict(enc.to_dict())
    assert np.array_equal(again.encode(rows), enc.encode(rows))
    assert {b.name for b in enc.context_blocks} == {"month", "position", "query"}


# ---- checkpoints and the VGG-19 backbone -----------------------------------------------
def test_save_and_load_model_gives_the_same_outputs(tmp_path: Path) -> None:
    from creative4u.m2fn.checkpoint import load_model, save_model

    rows = {"month": [1, 2], "query": ["a b", "c"]}
    rows["category"] = ["shoes", "mugs"]
    enc = AuxEncoder.fit(rows, ["month", "category"], ["query"], text_dim=8)
    cfg = M2FNConfig(**SMALL, loss="kld", buckets=4, cat_att=True, cat_map=True, hybrid=True)
    model = randomised(M2FN.for_encoder(cfg, enc))
    assert model.category == (2, 4)  # month's two levels, then category's
    model.centres.copy_(torch.tensor([0.001, 0.01, 0.02, 0.05]))
    save_model(tmp_path, model, cfg, enc, prefer_scale=2.5)
    loaded, cfg2, enc2, config = load_model(tmp_path)
    assert cfg2 == cfg and config["prefer_scale"] == 2.5
    px = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    aux = torch.from_numpy(enc2.encode([{"month": 1, "query": "a"}] * 3))
    with torch.no_grad():
        assert torch.equal(model(px, aux), loaded(px, aux))
        ctr = loaded.ctr(loaded(px, aux))
    assert ((ctr > 0.001) & (ctr < 0.05)).all()


def test_vgg19_backbone_loads_local_weights_and_never_downloads(tmp_path: Path) -> None:
    from torchvision.models.vgg import cfgs, make_layers

    from creative4u.m2fn.model import load_vgg19_weights

    cfg = M2FNConfig(backbone="vgg19", image_size=32, att_hidden=16, high_hidden=16)
    model = M2FN(cfg, AUX_DIM)
    with pytest.raises(FileNotFoundError, match="VGG-19 weights not found"):
        load_vgg19_weights(model.backbone, tmp_path / "absent.pth")
    reference = make_layers(cfgs["E"])
    weights = {f"features.{k}": v for k, v in reference.state_dict().items()}
    torch.save(weights, tmp_path / "vgg19.pth")
    load_vgg19_weights(model.backbone, tmp_path / "vgg19.pth")
    assert torch.equal(model.backbone.first.weight, reference[0].weight)
    assert torch.equal(model.backbone.rest[-2].weight, reference[34].weight)  # conv 16
    px, aux = inputs(2)
    with torch.no_grad():
        assert model.eval()(px, aux).shape == (2, 1)
    # HCCM's category-map channel widens the conv after the split; its new weights start at 0
    cfg = M2FNConfig(backbone="vgg19", image_size=32, att_hidden=16, high_hidden=16, cat_map=True)
    model = M2FN(cfg, AUX_DIM, CATEGORY)
    load_vgg19_weights(model.backbone, tmp_path / "vgg19.pth")
    conv = model.backbone.rest[model.backbone.split_at]
    assert conv.weight.shape[1] == 65 and torch.equal(conv.weight[:, :64], reference[5].weight)
    assert not conv.weight[:, 64:].any()
    with torch.no_grad():
        assert model.eval()(px, with_category(aux, [0, 1])).shape == (2, 1)


# ---- per-image features ----------------------------------------------------------------
def test_features_are_read_once_per_image_and_resized_copies_reuse_them() -> None:
    from PIL import Image, ImageDraw

    from creative4u.m2fn.image_features import FeatureCache, features_for

    def creative(tag: str) -> Image.Image:
        img = Image.new("RGB", (224, 224), (235, 230, 220))
        d = ImageDraw.Draw(img)
        d.ellipse([50, 40, 170, 160], fill=(205, 35, 45))
        d.rectangle([150, 170, 215, 215], fill=(20, 20, 20) if tag == "dark" else (240, 200, 30))
        return img

    calls: list[frozenset[str]] = []

    def fake(img: Image.Image, need: frozenset[str]) -> dict:
        calls.append(need)
        out = {"colour": "red", "ocr": f"read {len(calls)}", "thumb": None}
        from creative4u.m2fn.image_features import thumbnail

        out["thumb"] = thumbnail(img)
        return {k: v for k, v in out.items() if k in need}

    cache = FeatureCache()
    a = creative("dark")
    assert cache.near([0] * 768) == {}  # nothing known yet
    first = features_for([a, a, a], cache, ocr=True, compute=fake)
    assert len(calls) == 1 and first == [{"colour": "red", "ocr": "read 1"}] * 3
    # a copy resized to a VLM's pixel budget is the same creative: nothing is read again
    small = a.resize((112, 112), Image.Resampling.BICUBIC)
    assert features_for([small], cache, ocr=True, near_duplicates=True, compute=fake) == first[:1]
    assert len(calls) == 1
    # a creative that differs only in its price tag is another creative
    other = creative("yellow")
    assert features_for([other], cache, ocr=True, near_duplicates=True, compute=fake) == [
        {"colour": "red", "ocr": "read 2"}
    ]
    # without OCR the text field is empty, and nothing but the colour is computed
    cache2 = FeatureCache()
    assert features_for([a], cache2, ocr=False, compute=fake)[0]["ocr"] == ""
    assert "ocr" not in calls[-1]


# ---- the pretrained VLM's vision tower as the fixed network ----------------------------
BASE = Path(__file__).resolve().parents[1] / "models" / "small-base"


def test_vision_tower_sees_patches_exactly_as_the_vlm_processor_makes_them() -> None:
    from PIL import Image
    from transformers import AutoImageProcessor

    from creative4u.m2fn.tower import tower_for

    tower = tower_for(str(BASE))
    proc = AutoImageProcessor.from_pretrained(BASE)
    rng = np.random.default_rng(0)
    side = 2 * tower.stride
    imgs = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(2)]
    ref = proc(images=[Image.fromarray(i) for i in imgs], return_tensors="pt")
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(tower.mean).view(1, 3, 1, 1)) / torch.tensor(tower.std).view(1, 3, 1, 1)
    px, grid = tower.patches(x)
    assert torch.equal(grid, ref["image_grid_thw"])
    assert torch.allclose(px, ref["pixel_values"], atol=1e-5)
    # the merged map is the tower's own output, laid out as the image's grid
    out = tower.net(ref["pixel_values"], grid_thw=ref["image_grid_thw"]).pooler_output
    fmap = tower(x)
    assert fmap.shape == (2, tower.channels, 2, 2)
    assert torch.allclose(fmap[1, :, 0, 1], out[4 + 1], atol=1e-5)


def test_vlm_backbone_is_fixed_outside_the_state_and_remembers_its_images(tmp_path: Path) -> None:
    from creative4u.m2fn.checkpoint import load_model, save_model

    enc = AuxEncoder.fit({"category": ["shoes", "mugs"], "query": ["a", "b"]}, ["category"], [])
    cfg = M2FNConfig(
        backbone="vlm", vision_tower=str(BASE), image_size=56, widths=[16, 16], cat_att=True
    )
    model = M2FN.for_encoder(cfg, enc).eval()
    tower = model.backbone.tower
    assert not any("tower" in k or "net." in k for k in model.state_dict())
    assert not any(p is q for p in model.parameters() for q in tower.net.parameters())
    assert torch.allclose(model.mean.flatten(), torch.tensor(tower.mean))
    calls = []
    hook = tower.net.register_forward_hook(lambda *a: calls.append(1))
    px = torch.randint(0, 256, (3, 3, 56, 56), dtype=torch.uint8)
    aux = torch.from_numpy(enc.encode([{"category": "shoes"}, {"category": "mugs"}] * 2))[:3]
    with torch.no_grad():
        first = model(px, aux)
        again = model(px, aux)  # the same images: the tower does not run again
    hook.remove()
    assert torch.equal(first, again) and len(calls) == 1
    save_model(tmp_path, model, cfg, enc)
    loaded, *_ = load_model(tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(px, aux), first)
    with pytest.raises(ValueError, match="multiple of the tower's 28 px"):
        M2FN(dataclasses_replace(cfg, image_size=60, cat_att=False), enc.dim)
    with pytest.raises(ValueError, match="needs vision_tower"):
        M2FNConfig(backbone="vlm")

"""The M2FN network: an image backbone fused with the auxiliary vector in three steps.

    image ─ conv1 ─ CBN(aux) ─ ... backbone ... ─ F (N, C, H, W)        low-level fusion
    F, aux ─ MLP([F_p ; aux]) per position ─ softmax over positions ─ v = sum_p a_p F_p   attention
    v ─ FC ─ e;   tanh(W_i e) * tanh(W_a aux) ─ head                    high-level fusion

Switched off, each module falls back to what the paper's ablation (table 4) compares it with:
plain batch norm instead of CBN, average pooling instead of attention, and concatenating the
auxiliary vector before the last fully connected layer instead of the multiplicative fusion
(with `aux` off too, the network is the image-only baseline).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from creative4u.m2fn.config import M2FNConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's ImageNet weights, if someone put them there


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are predicted from the auxiliary vector (De Vries et al.
    2017). The predictor's last layer starts at zero, so training starts from plain batch norm
    and the auxiliary input earns its influence."""

    def __init__(self, channels: int, aux_dim: int, hidden: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.mlp = nn.Sequential(
            nn.Linear(aux_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * channels)
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        d_gamma, beta = self.mlp(aux).chunk(2, dim=1)
        return self.bn(x) * (1.0 + d_gamma)[:, :, None, None] + beta[:, :, None, None]


class SpatialAttention(nn.Module):
    """Soft attention over positions, conditioned on the auxiliary vector.

    The paper replicates aux over the map, concatenates it to the features and applies an MLP
    at every position; the first layer of that MLP on [F_p ; aux] is W_f F_p + W_a aux, which is
    computed here without materialising the replicated (N, dim_aux, H, W) tensor."""

    def __init__(self, channels: int, aux_dim: int, hidden: int):
        super().__init__()
        self.feat = nn.Conv2d(channels, hidden, 1)
        self.aux = nn.Linear(aux_dim, hidden, bias=False)
        self.score = nn.Conv2d(hidden, 1, 1)
        # uniform attention at the start, i.e. average pooling: where to look is learned
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def weights(self, f: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """(N, H*W) attention over positions (sums to 1 per image)."""
        h = F.relu(self.feat(f) + self.aux(aux)[:, :, None, None])
        return torch.softmax(self.score(h).flatten(1), dim=1)

    def forward(self, f: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        a = self.weights(f, aux)
        return torch.bmm(f.flatten(2), a.unsqueeze(2)).squeeze(2)


class HighLevelFusion(nn.Module):
    """Affine maps of both modalities to one size, tanh, element-wise product.

    The auxiliary side starts at a bias of 1 (tanh = 0.76): with the default initialisation its
    pre-activations are a few hundredths, the product nearly zero, and the image path learns at
    a tenth of its speed until the auxiliary weights have grown."""

    def __init__(self, image_dim: int, aux_dim: int, hidden: int):
        super().__init__()
        self.image = nn.Linear(image_dim, hidden)
        self.aux = nn.Linear(aux_dim, hidden)
        nn.init.constant_(self.aux.bias, 1.0)

    def forward(self, v: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.image(v)) * torch.tanh(self.aux(aux))


class CategoryPrior(nn.Module):
    """HCCM's category prior at the backbone's split (Chen et al. 2022, eq. 8-11).

    Channel attention: the map's average- and max-pooled vectors, each concatenated with the
    ad's category, go through one shared MLP; the sum's sigmoid scales the channels (CBAM's
    channel attention with the category as a second input). Category map: a learned array per
    category, of the map's size, concatenated to the map as one more channel. The category is a
    one-hot block of the auxiliary vector, or its training frequencies when it is not known."""

    def __init__(
        self,
        channels: int,
        categories: int,
        size: tuple[int, int],
        hidden: int,
        attention: bool,
        prior_map: bool,
    ):
        super().__init__()
        self.size = size
        self.mlp = (
            nn.Sequential(
                nn.Linear(channels + categories, hidden),
                nn.ReLU(inplace=True),
                nn.Linear(hidden, channels),
            )
            if attention
            else None
        )
        self.maps = (
            nn.Parameter(torch.randn(categories, size[0] * size[1]) * 0.1) if prior_map else None
        )

    def channel_weights(self, f: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """(N, C) in (0, 1): M = sigmoid(MLP[AvgP(F); v] + MLP[MaxP(F); v])."""
        assert self.mlp is not None
        avg = torch.cat([f.mean(dim=(2, 3)), category], dim=1)
        mx = torch.cat([f.amax(dim=(2, 3)), category], dim=1)
        return torch.sigmoid(self.mlp(avg) + self.mlp(mx))

    def forward(self, f: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        if self.mlp is not None:
            f = f * self.channel_weights(f, category)[:, :, None, None]
        if self.maps is not None:
            a = (category @ self.maps).view(f.shape[0], 1, *self.size)
            f = torch.cat([f, a], dim=1)
        return f


class Backbone(nn.Module):
    """conv1 -> norm (CBN with low-level fusion on) -> the rest; returns the last feature map.

    `split_at` is HCCM's split in `rest`: the category prior (if any) is applied to the map that
    enters `rest[split_at]`, and with the hybrid on, conv1 and `rest[:split_at]` are the fixed
    CNN. The norm after conv1 stays trainable: it is M2FN's low-level fusion, not a CNN layer."""

    def __init__(
        self,
        first: nn.Conv2d,
        norm: nn.Module,
        rest: nn.Sequential,
        out_channels: int,
        split_at: int,
        split_channels: int,
    ):
        super().__init__()
        self.first, self.norm, self.rest = first, norm, rest
        self.out_channels = out_channels
        self.split_at, self.split_channels = split_at, split_channels
        self.prior: CategoryPrior | None = None

    def fixed_parameters(self) -> list[nn.Parameter]:
        return [*self.first.parameters(), *self.rest[: self.split_at].parameters()]

    @torch.no_grad()
    def split_size(self, image_size: int) -> tuple[int, int]:
        """(H, W) of the map at the split, for an input of `image_size` pixels."""
        was = self.training
        self.eval()
        x = self.rest[: self.split_at](self.first(torch.zeros(1, 3, image_size, image_size)))
        self.train(was)
        return int(x.shape[2]), int(x.shape[3])

    def forward(
        self, x: torch.Tensor, aux: torch.Tensor | None, category: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.first(x)
        x = _normed(self.norm, x, aux)
        for i, layer in enumerate(self.rest):
            if i == self.split_at and self.prior is not None:
                x = self.prior(x, category)
            x = layer(x)
        return x


def small_cnn(cfg: M2FNConfig, aux_dim: int) -> Backbone:
    """A VGG-shaped CNN trained from scratch: a stride-2 3x3 stem (CBN's conv1), then 3x3 conv,
    BN, ReLU per stage with a 2x2 max-pool between stages; the last stage keeps its map for the
    attention (8 x 8 at 64 px with four widths). The stride-2 stem quarters the cost of the
    full-resolution layers, which dominate training time on a CPU. HCCM's split is after stage
    `cfg.split` (0: right after the stem); the category map widens the conv that follows it."""
    w = list(cfg.widths)
    split = min(cfg.split, max(len(w) - 2, 0))  # only HCCM needs it valid (the config checks)
    first = nn.Conv2d(3, w[0], 3, stride=2, padding=1, bias=False)  # a norm follows
    norm = _first_norm(cfg, w[0], aux_dim, plain=nn.BatchNorm2d(w[0]))
    layers: list[nn.Module] = [nn.ReLU(inplace=True)]
    split_at = 1
    for i in range(1, len(w)):
        if i >= 2:
            layers.append(nn.MaxPool2d(2))
        extra = 1 if cfg.cat_map and i == split + 1 else 0
        layers += _stage(w[i - 1] + extra, w[i])
        if i == split:
            split_at = len(layers)
    return Backbone(first, norm, nn.Sequential(*layers), w[-1], split_at, w[split])


def vgg19(cfg: M2FNConfig, aux_dim: int) -> Backbone:
    """torchvision's VGG-19 convolutional part without its last pool, CBN after conv1 (the
    paper's placement). HCCM's split is after pooling block `cfg.split`: the shallow blocks are
    HCCM's fixed ImageNet CNN. Weights are loaded separately (`load_vgg19_weights`)."""
    from torchvision.models.vgg import cfgs, make_layers

    feats = make_layers(cfgs["E"], batch_norm=False)  # VGG-19's convolutional part only
    first = feats[0]
    norm = _first_norm(cfg, 64, aux_dim, plain=nn.Identity())  # vanilla VGG-19 has no BN
    rest = list(feats)[1:36]
    pools = [i for i, m in enumerate(rest) if isinstance(m, nn.MaxPool2d)]
    split_at = pools[min(max(cfg.split, 1), 4) - 1] + 1
    conv = rest[split_at]
    channels = conv.in_channels
    if cfg.cat_map:
        rest[split_at] = nn.Conv2d(channels + 1, conv.out_channels, 3, padding=1)
    return Backbone(first, norm, nn.Sequential(*rest), 512, split_at, channels)


class TowerBackbone(nn.Module):
    """HCCM's hybrid on a VLM's vision tower: the tower is the fixed network (always fixed, and
    not part of M2FN's state: the checkpoint names the VLM), the category prior sits on its
    merged map, and a trainable CNN of `widths` follows, its first norm the low-level fusion."""

    def __init__(self, cfg: M2FNConfig, aux_dim: int):
        super().__init__()
        from creative4u.m2fn.tower import tower_for

        tower = tower_for(cfg.vision_tower)
        if cfg.image_size % tower.stride:
            raise ValueError(
                f"backbone=vlm: image_size must be a multiple of the tower's {tower.stride} px "
                f"(patch x merge), got {cfg.image_size}"
            )
        object.__setattr__(self, "tower", tower)  # hidden from parameters() and state_dict()
        w = list(cfg.widths)
        c = tower.channels
        self.first = nn.Conv2d(c + (1 if cfg.cat_map else 0), w[0], 3, padding=1, bias=False)
        self.norm = _first_norm(cfg, w[0], aux_dim, plain=nn.BatchNorm2d(w[0]))
        layers: list[nn.Module] = [nn.ReLU(inplace=True)]
        for i in range(1, len(w)):
            layers += _stage(w[i - 1], w[i])
        self.rest = nn.Sequential(*layers)
        self.out_channels, self.split_at, self.split_channels = w[-1], 0, c
        self.prior: CategoryPrior | None = None

    def fixed_parameters(self) -> list[nn.Parameter]:
        return []  # the tower is fixed by construction and holds no M2FN parameter

    def split_size(self, image_size: int) -> tuple[int, int]:
        side = image_size // self.tower.stride
        return side, side

    def forward(
        self, x: torch.Tensor, aux: torch.Tensor | None, category: torch.Tensor | None = None
    ) -> torch.Tensor:
        f = self.tower(x)
        if self.prior is not None:
            f = self.prior(f, category)
        f = self.first(f)
        f = _normed(self.norm, f, aux)
        return self.rest(f)


def _stage(c_in: int, c_out: int) -> list[nn.Module]:
    """3x3 conv, batch norm, ReLU: one stage of the trainable CNNs."""
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


def _normed(norm: nn.Module, x: torch.Tensor, aux: torch.Tensor | None) -> torch.Tensor:
    """The first norm: CBN reads the auxiliary vector (low-level fusion), a plain norm does not."""
    return norm(x, aux) if isinstance(norm, ConditionalBatchNorm2d) else norm(x)


def _first_norm(cfg: M2FNConfig, channels: int, aux_dim: int, plain: nn.Module) -> nn.Module:
    if cfg.low:
        return ConditionalBatchNorm2d(channels, aux_dim, cfg.low_hidden)
    return plain


def default_vgg19_weights() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def load_vgg19_weights(backbone: Backbone, path: str | Path | None) -> Path:
    """Copy ImageNet weights into the VGG-19 backbone from a local torchvision weights file
    (nothing is downloaded: a missing file is an error that says where it looked)."""
    p = Path(path) if path else default_vgg19_weights()
    if not p.is_file():
        raise FileNotFoundError(
            f"VGG-19 weights not found at {p}; put torchvision's {VGG19_FILE} there "
            "(or pass --vgg19_weights), or use backbone=small"
        )
    state = torch.load(p, map_location="cpu", weights_only=True)
    feats = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    backbone.first.load_state_dict({"weight": feats["0.weight"], "bias": feats["0.bias"]})
    own = backbone.rest.state_dict()
    rest = {}
    for k, v in feats.items():
        idx, name = k.split(".", 1)
        if 1 <= int(idx) < 36:
            key = f"{int(idx) - 1}.{name}"
            if own[key].shape != v.shape:  # HCCM's category-map channel: its weights start at 0
                v = torch.cat([v, own[key].new_zeros(v.shape[0], 1, *v.shape[2:])], dim=1)
            rest[key] = v
    backbone.rest.load_state_dict(rest)
    return p


class M2FN(nn.Module):
    """CTR from an image and its auxiliary vector. `forward` returns the head's logits: one
    (sigmoid -> CTR) for the MSE loss, `buckets` (softmax -> CTR distribution) for KLD."""

    def __init__(self, cfg: M2FNConfig, aux_dim: int, category: tuple[int, int] | None = None):
        super().__init__()
        self.cfg = cfg
        self.aux_dim = aux_dim if cfg.aux else 0
        build = {"vgg19": vgg19, "vlm": TowerBackbone}.get(cfg.backbone, small_cnn)
        self.backbone = build(cfg, self.aux_dim)
        self.category = category
        if cfg.cat_att or cfg.cat_map:
            if category is None:
                raise ValueError(
                    "cat_att / cat_map need the category block of the auxiliary vector "
                    "(build the model with M2FN.for_encoder)"
                )
            bb = self.backbone
            bb.prior = CategoryPrior(
                bb.split_channels,
                category[1] - category[0],
                bb.split_size(cfg.image_size),
                cfg.cat_hidden,
                attention=cfg.cat_att,
                prior_map=cfg.cat_map,
            )
        if cfg.hybrid:
            for p in self.backbone.fixed_parameters():
                p.requires_grad_(False)
        c = self.backbone.out_channels
        self.attention = SpatialAttention(c, self.aux_dim, cfg.att_hidden) if cfg.att else None
        self.image_fc = nn.Sequential(nn.Linear(c, cfg.image_hidden), nn.ReLU(inplace=True))
        if cfg.high:
            self.fusion: HighLevelFusion | None = HighLevelFusion(
                cfg.image_hidden, self.aux_dim, cfg.high_hidden
            )
            head_in = cfg.high_hidden
        else:
            self.fusion = None
            head_in = cfg.image_hidden + self.aux_dim
        self.dropout = nn.Dropout(cfg.dropout)
        out_dim = cfg.buckets if cfg.loss == "kld" else 1
        self.head = nn.Linear(head_in, out_dim)
        # a pretrained network sees images normalised as it was trained (the VLM's own stats)
        tower = getattr(self.backbone, "tower", None)
        mean, std = (tower.mean, tower.std) if tower is not None else (IMAGENET_MEAN, IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        # kld: the CTR each bucket stands for (set from the training data)
        self.register_buffer("centres", torch.zeros(out_dim if cfg.loss == "kld" else 0))

    @classmethod
    def for_encoder(cls, cfg: M2FNConfig, encoder: Any) -> M2FN:
        """The model for an auxiliary encoder: its size, and where its category block is."""
        block = next((b for b in encoder.blocks if b.name == "category"), None)
        return cls(cfg, encoder.dim, (block.start, block.stop) if block is not None else None)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float() / 255.0 if pixels.dtype == torch.uint8 else pixels
        return (x - self.mean) / self.std

    def features(self, pixels: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """The representation the head reads (after fusion)."""
        a = aux if self.cfg.aux else None
        cat = aux[:, self.category[0] : self.category[1]] if self.category is not None else None
        fmap = self.backbone(self.normalise(pixels), a, cat)
        v = self.attention(fmap, aux) if self.attention is not None else fmap.mean(dim=(2, 3))
        e = self.image_fc(v)
        if self.fusion is not None:
            return self.fusion(e, aux)
        return torch.cat([e, aux], dim=1) if self.cfg.aux else e

    def forward(self, pixels: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(pixels, aux)))

    def ctr(self, logits: torch.Tensor) -> torch.Tensor:
        """Predicted CTR from the head's logits: the sigmoid, or the mean of the distribution."""
        if self.cfg.loss == "kld":
            return torch.softmax(logits, dim=1) @ self.centres
        return torch.sigmoid(logits.squeeze(1))

    @torch.no_grad()
    def init_output(self, mean_ctr: float, prior: torch.Tensor | None = None) -> None:
        """Start the head at the training data's average, not at CTR 0.5: a CTR model that begins
        a hundred times off spends its first epoch getting back."""
        self.head.weight.mul_(0.1)
        if self.cfg.loss == "kld" and prior is not None:
            self.head.bias.copy_(torch.log(prior.clamp_min(1e-6)))
        else:
            p = min(max(mean_ctr, 1e-6), 1 - 1e-6)
            self.head.bias.fill_(float(torch.logit(torch.tensor(p))))

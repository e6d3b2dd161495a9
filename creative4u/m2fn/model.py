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


class Backbone(nn.Module):
    """conv1 -> norm (CBN with low-level fusion on) -> the rest; returns the last feature map."""

    def __init__(self, first: nn.Conv2d, norm: nn.Module, rest: nn.Module, out_channels: int):
        super().__init__()
        self.first, self.norm, self.rest = first, norm, rest
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor, aux: torch.Tensor | None) -> torch.Tensor:
        x = self.first(x)
        x = self.norm(x, aux) if isinstance(self.norm, ConditionalBatchNorm2d) else self.norm(x)
        return self.rest(x)


def small_cnn(cfg: M2FNConfig, aux_dim: int) -> Backbone:
    """A VGG-shaped CNN trained from scratch: a stride-2 3x3 stem (CBN's conv1), then 3x3 conv,
    BN, ReLU per stage with a 2x2 max-pool between stages; the last stage keeps its map for the
    attention (8 x 8 at 64 px with four widths). The stride-2 stem quarters the cost of the
    full-resolution layers, which dominate training time on a CPU."""
    w = list(cfg.widths)
    first = nn.Conv2d(3, w[0], 3, stride=2, padding=1, bias=False)  # a norm follows
    norm = _first_norm(cfg, w[0], aux_dim, plain=nn.BatchNorm2d(w[0]))
    layers: list[nn.Module] = [nn.ReLU(inplace=True)]
    for i in range(1, len(w)):
        if i >= 2:
            layers.append(nn.MaxPool2d(2))
        layers += [
            nn.Conv2d(w[i - 1], w[i], 3, padding=1, bias=False),
            nn.BatchNorm2d(w[i]),
            nn.ReLU(inplace=True),
        ]
    return Backbone(first, norm, nn.Sequential(*layers), w[-1])


def vgg19(cfg: M2FNConfig, aux_dim: int) -> Backbone:
    """torchvision's VGG-19 convolutional part without its last pool, CBN after conv1 (the
    paper's placement). Weights are loaded separately (`load_vgg19_weights`)."""
    from torchvision.models.vgg import cfgs, make_layers

    feats = make_layers(cfgs["E"], batch_norm=False)  # VGG-19's convolutional part only
    first = feats[0]
    norm = _first_norm(cfg, 64, aux_dim, plain=nn.Identity())  # vanilla VGG-19 has no BN
    return Backbone(first, norm, nn.Sequential(*list(feats)[1:36]), 512)


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
    rest = {}
    for k, v in feats.items():
        idx, name = k.split(".", 1)
        if 1 <= int(idx) < 36:
            rest[f"{int(idx) - 1}.{name}"] = v
    backbone.rest.load_state_dict(rest)
    return p


class M2FN(nn.Module):
    """CTR from an image and its auxiliary vector. `forward` returns the head's logits: one
    (sigmoid -> CTR) for the MSE loss, `buckets` (softmax -> CTR distribution) for KLD."""

    def __init__(self, cfg: M2FNConfig, aux_dim: int):
        super().__init__()
        self.cfg = cfg
        self.aux_dim = aux_dim if cfg.aux else 0
        build = vgg19 if cfg.backbone == "vgg19" else small_cnn
        self.backbone = build(cfg, self.aux_dim)
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
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        # kld: the CTR each bucket stands for (set from the training data)
        self.register_buffer("centres", torch.zeros(out_dim if cfg.loss == "kld" else 0))

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float() / 255.0 if pixels.dtype == torch.uint8 else pixels
        return (x - self.mean) / self.std

    def features(self, pixels: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """The representation the head reads (after fusion)."""
        a = aux if self.cfg.aux else None
        fmap = self.backbone(self.normalise(pixels), a)
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

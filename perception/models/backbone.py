"""2D BEV backbone (strided conv blocks, PointPillars/SECOND style) and the FPN-style neck
that upsamples every block to the first block's stride and concatenates them."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1),
        nn.ReLU(),
    )


class BlockBackbone(nn.Module):
    """``len(channels)`` blocks; block i = one strided conv + ``layers[i]`` 3x3 convs.

    Input (B, C_in, H, W) -> list of (B, channels[i], H / prod(strides[:i+1]), ...).
    """

    def __init__(self, in_channels: int, channels: list[int], layers: list[int], strides: list[int]):
        super().__init__()
        if not len(channels) == len(layers) == len(strides):
            raise ValueError("backbone channels, layers and strides must have the same length")
        blocks, cin = [], in_channels
        for c, n, s in zip(channels, layers, strides):
            blocks.append(nn.Sequential(conv_bn_relu(cin, c, s), *[conv_bn_relu(c, c) for _ in range(n)]))
            cin = c
        self.blocks = nn.ModuleList(blocks)
        self.channels, self.strides = list(channels), list(strides)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs


class SqueezeExcite(nn.Module):
    """Channel attention: global average pool -> bottleneck MLP -> sigmoid gate (Hu et al. 2018)."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class UpsampleNeck(nn.Module):
    """Bring every backbone block to the stride of the first one (transposed conv), concatenate,
    optionally gate the result with squeeze-excitation. Output (B, sum(channels), H1, W1)."""

    def __init__(self, in_channels: list[int], strides: list[int], channels: list[int], se: bool = False):
        super().__init__()
        if len(channels) != len(in_channels):
            raise ValueError("neck channels must have one entry per backbone block")
        ups, total = [], 1
        for i, (cin, cout) in enumerate(zip(in_channels, channels)):
            total = total * strides[i] if i else 1
            up = (
                nn.ConvTranspose2d(cin, cout, total, stride=total, bias=False)
                if total > 1
                else nn.Conv2d(cin, cout, 1, bias=False)
            )
            ups.append(nn.Sequential(up, nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1), nn.ReLU()))
        self.ups = nn.ModuleList(ups)
        self.out_channels = sum(channels)
        self.se = SqueezeExcite(self.out_channels) if se else nn.Identity()

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.se(torch.cat([up(f) for up, f in zip(self.ups, feats)], dim=1))

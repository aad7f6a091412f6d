"""Building blocks of the models of :mod:`jetimage.models`."""

from __future__ import annotations

import torch
from torch import nn


def conv_block(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    """Convolution keeping the image size ('same' padding, explicit for even kernels), ReLU."""
    before, after = (kernel - 1) // 2, kernel // 2
    return [nn.ZeroPad2d((before, after, before, after)), nn.Conv2d(c_in, c_out, kernel), nn.ReLU()]


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and a shortcut (projected when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        )
        self.relu = nn.ReLU()

    def forward(self, x):
        """The block's output: body plus shortcut, through a ReLU."""
        return self.relu(self.body(x) + self.shortcut(x))


def dense_stack(widths: tuple[int, ...], dropout: float = 0.0) -> list[nn.Module]:
    """Linear layers from ``widths[0]`` through each of ``widths[1:]``, each followed by a ReLU
    (and dropout if any)."""
    layers: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(w_in, w_out), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return layers


class ParticleFlow(nn.Module):
    """Deep Set on a padded particle cloud: Φ per particle (of the feature ``columns``), the
    masked sum, F on the sum."""

    columns: torch.Tensor

    def __init__(
        self, columns: list[int], phi: tuple[int, ...], f: tuple[int, ...], n_classes: int, dropout
    ):
        super().__init__()
        self.register_buffer("columns", torch.tensor(columns), persistent=False)
        self.phi = nn.Sequential(*dense_stack((len(columns), *phi)))
        self.f = nn.Sequential(
            *dense_stack((phi[-1], *f), dropout), nn.Linear(f[-1] if f else phi[-1], n_classes)
        )

    def forward(self, particles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        latent = self.phi(particles.index_select(-1, self.columns)) * mask.unsqueeze(-1)
        return self.f(latent.sum(dim=1))

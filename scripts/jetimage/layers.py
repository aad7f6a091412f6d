"""Building blocks of the image models of :mod:`jetimage.models`."""

from __future__ import annotations

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

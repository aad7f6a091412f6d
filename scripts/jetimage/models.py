"""A registry of named image classifiers.

Every factory takes the input shape (channels, η pixels, φ pixels), the number of classes and
its own options, and returns a ``torch.nn.Module`` that maps images to class logits. Factories
work for any image size and channel count.

Examples:
    >>> model = build_model("hsf-cnn", in_shape=(1, 40, 40), n_classes=2)
    >>> import torch; model(torch.zeros(3, 1, 40, 40)).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

MODELS: dict[str, Callable[..., nn.Module]] = {}
#: Smallest image side an architecture accepts (two 2×2 max-pools need 4 pixels); others: 1.
#: A literal: jetimage.config reads it from this file's syntax to check configs without torch.
MIN_PIXELS: dict[str, int] = {"hsf-cnn": 4, "deeptop-cnn": 4}


def register(name: str):
    """Decorator adding a factory to :data:`MODELS` under ``name``."""
    def add(factory):
        MODELS[name] = factory
        return factory
    return add


def build_model(architecture: str, *, in_shape: tuple[int, int, int], n_classes: int,
                **options) -> nn.Module:
    """Build a registered model.

    Raises:
        KeyError: unknown architecture (the message lists the known ones).
        ValueError: images too small for the architecture.
    """
    if architecture not in MODELS:
        raise KeyError(f"unknown model architecture {architecture!r}; known: {sorted(MODELS)}")
    if min(in_shape[1:]) < MIN_PIXELS.get(architecture, 1):
        raise ValueError(f"{architecture} needs images of at least {MIN_PIXELS[architecture]} "
                         f"pixels a side, not {tuple(in_shape[1:])}")
    return MODELS[architecture](tuple(in_shape), n_classes, **options)


@register("logistic")
def logistic(in_shape, n_classes):
    """Logistic regression on the pixels: one linear layer (softmax in the loss)."""
    channels, height, width = in_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, n_classes))


@register("fisher")
def fisher(in_shape, n_classes):
    """Fisher's linear discriminant on the pixels (Cogan et al., arXiv:1407.5675): a linear
    layer like ``logistic``, whose weights :func:`jetimage.interpret.fit_fisher` sets in closed
    form (linear discriminant analysis, softmax = the class posterior) instead of training."""
    channels, height, width = in_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, n_classes))


#: Architectures that are one linear layer on the pixels: their weights draw as images.
LINEAR = ("logistic", "fisher")


@register("mlp")
def mlp(in_shape, n_classes, *, hidden: tuple[int, ...] = (256, 128), dropout: float = 0.2):
    """Fully connected network on the flattened pixels."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_shape[0] * in_shape[1] * in_shape[2]
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU(), nn.Dropout(dropout)]
        width = units
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def _conv_block(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    """Convolution keeping the image size ('same' padding, explicit for even kernels), ReLU."""
    before, after = (kernel - 1) // 2, kernel // 2
    return [nn.ZeroPad2d((before, after, before, after)), nn.Conv2d(c_in, c_out, kernel),
            nn.ReLU()]


@register("hsf-cnn")
def hsf_cnn(in_shape, n_classes, *, filters: tuple[int, int] = (16, 32), kernel: int = 3,
            dense: int = 64, dropout: float = 0.0):
    """The seed lesson's CNN: two conv + ReLU + max-pool blocks and a fully connected head."""
    channels, height, width = in_shape
    flat = filters[1] * (height // 4) * (width // 4)
    return nn.Sequential(
        *_conv_block(channels, filters[0], kernel), nn.MaxPool2d(2),
        *_conv_block(filters[0], filters[1], kernel), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(flat, dense), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(dense, n_classes),
    )


@register("deeptop-cnn")
def deeptop_cnn(in_shape, n_classes, *, filters: tuple[int, int] = (32, 64), kernel: int = 4,
                dense: int = 300, dropout: float = 0.5):
    """DeepTop-style CNN: four conv layers in two pooled pairs, dropout, a 300-unit dense layer."""
    channels, height, width = in_shape
    flat = filters[1] * (height // 4) * (width // 4)
    return nn.Sequential(
        *_conv_block(channels, filters[0], kernel), *_conv_block(filters[0], filters[0], kernel),
        nn.MaxPool2d(2),
        *_conv_block(filters[0], filters[1], kernel), *_conv_block(filters[1], filters[1], kernel),
        nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat, dense), nn.ReLU(),
        nn.Dropout(dropout), nn.Linear(dense, n_classes),
    )


class _BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and a shortcut (projected when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


@register("resnet")
def resnet(in_shape, n_classes, *, widths: tuple[int, ...] = (16, 32, 64),
           blocks_per_stage: int = 2, dropout: float = 0.0):
    """A small ResNet (He et al. 2016) for images of any size: a 3×3 stem, stages of basic blocks
    (each stage after the first halves the image), global average pooling, a linear head."""
    channels = in_shape[0]
    layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 3, padding=1, bias=False),
                               nn.BatchNorm2d(widths[0]), nn.ReLU()]
    c_in = widths[0]
    for stage, width in enumerate(widths):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(_BasicBlock(c_in, width, stride))
            c_in = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
               nn.Linear(c_in, n_classes)]
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

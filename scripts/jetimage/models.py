"""A registry of named image classifiers.

Every factory takes the input shape (channels, η pixels, φ pixels), the number of classes and
its own options, and returns a ``torch.nn.Module`` that maps images to class logits. Factories
work for any image size and channel count. Importing this module does not import torch (the
factories do), so the config reads the registry's names and options without it.

Examples:
    >>> model = build_model("hsf-cnn", in_shape=(1, 40, 40), n_classes=2)
    >>> import torch; model(torch.zeros(3, 1, 40, 40)).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

MODELS: dict[str, Callable[..., nn.Module]] = {}
#: Smallest image side an architecture accepts (two 2×2 max-pools need 4 pixels); others: 1.
MIN_PIXELS: dict[str, int] = {"hsf-cnn": 4, "deeptop-cnn": 4}


def register(name: str):
    """Decorator adding a factory to :data:`MODELS` under ``name``."""

    def add(factory):
        MODELS[name] = factory
        return factory

    return add


def build_model(
    architecture: str, *, in_shape: tuple[int, ...], n_classes: int, **options
) -> nn.Module:
    """Build a registered model.

    Raises:
        KeyError: unknown architecture (the message lists the known ones).
        ValueError: images too small for the architecture.
    """
    if architecture not in MODELS:
        msg = f"unknown model architecture {architecture!r}; known: {sorted(MODELS)}"
        raise KeyError(msg)
    if min(in_shape[1:]) < MIN_PIXELS.get(architecture, 1):
        msg = (
            f"{architecture} needs images of at least {MIN_PIXELS[architecture]} "
            f"pixels a side, not {tuple(in_shape[1:])}"
        )
        raise ValueError(msg)
    return MODELS[architecture](tuple(in_shape), n_classes, **options)


@register("logistic")
def logistic(in_shape, n_classes):
    """Logistic regression on the pixels: one linear layer (softmax in the loss)."""
    from torch import nn

    channels, height, width = in_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, n_classes))


@register("fisher")
def fisher(in_shape, n_classes):
    """Fisher's linear discriminant on the pixels (Cogan et al., arXiv:1407.5675): a linear
    layer like ``logistic``, whose weights :func:`jetimage.interpret.fit_fisher` sets in closed
    form (linear discriminant analysis, softmax = the class posterior) instead of training."""
    from torch import nn

    channels, height, width = in_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, n_classes))


#: Architectures that are one linear layer on the pixels: their weights draw as images.
LINEAR = ("logistic", "fisher")


def output_layer(model: nn.Module) -> nn.Linear:
    """The last layer of a model, which for the :data:`LINEAR` architectures is the only one
    with weights."""
    from torch import nn

    layer = list(model.children())[-1]
    if not isinstance(layer, nn.Linear):
        msg = f"the last layer of this model is a {type(layer).__name__}, not a Linear layer"
        raise TypeError(msg)
    return layer


@register("mlp")
def mlp(in_shape, n_classes, *, hidden: tuple[int, ...] = (256, 128), dropout: float = 0.2):
    """Fully connected network on the flattened pixels."""
    from torch import nn

    layers: list[nn.Module] = [nn.Flatten()]
    width = in_shape[0] * in_shape[1] * in_shape[2]
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU(), nn.Dropout(dropout)]
        width = units
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


@register("hsf-cnn")
def hsf_cnn(
    in_shape,
    n_classes,
    *,
    filters: tuple[int, int] = (16, 32),
    kernel: int = 3,
    dense: int = 64,
    dropout: float = 0.0,
):
    """The seed lesson's CNN: two conv + ReLU + max-pool blocks and a fully connected head."""
    from torch import nn

    from jetimage.layers import conv_block

    channels, height, width = in_shape
    flat = filters[1] * (height // 4) * (width // 4)
    return nn.Sequential(
        *conv_block(channels, filters[0], kernel),
        nn.MaxPool2d(2),
        *conv_block(filters[0], filters[1], kernel),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, dense),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(dense, n_classes),
    )


@register("deeptop-cnn")
def deeptop_cnn(
    in_shape,
    n_classes,
    *,
    filters: tuple[int, int] = (32, 64),
    kernel: int = 4,
    dense: int = 300,
    dropout: float = 0.5,
):
    """DeepTop-style CNN: four conv layers in two pooled pairs, dropout, a 300-unit dense layer."""
    from torch import nn

    from jetimage.layers import conv_block

    channels, height, width = in_shape
    flat = filters[1] * (height // 4) * (width // 4)
    return nn.Sequential(
        *conv_block(channels, filters[0], kernel),
        *conv_block(filters[0], filters[0], kernel),
        nn.MaxPool2d(2),
        *conv_block(filters[0], filters[1], kernel),
        *conv_block(filters[1], filters[1], kernel),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(flat, dense),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(dense, n_classes),
    )


@register("resnet")
def resnet(
    in_shape,
    n_classes,
    *,
    widths: tuple[int, ...] = (16, 32, 64),
    blocks_per_stage: int = 2,
    dropout: float = 0.0,
):
    """A small ResNet (He et al. 2016) for images of any size: a 3×3 stem, stages of basic blocks
    (each stage after the first halves the image), global average pooling, a linear head."""
    from torch import nn

    from jetimage.layers import BasicBlock

    channels = in_shape[0]
    layers: list[nn.Module] = [
        nn.Conv2d(channels, widths[0], 3, padding=1, bias=False),
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(),
    ]
    c_in = widths[0]
    for stage, width in enumerate(widths):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(c_in, width, stride))
            c_in = width
    layers += [
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(c_in, n_classes),
    ]
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

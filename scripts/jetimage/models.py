"""A registry of named classifiers of jets, each declaring the view of a jet it takes.

Every factory takes the shape of one jet's input, the number of classes and its own options,
and returns a ``torch.nn.Module`` that maps a batch of inputs to class logits. What an
architecture takes (:data:`INPUTS`) is one of

- ``"images"``: (channels, η pixels, φ pixels); the module's ``forward(images)``;
- ``"particles"``: the particle view (:mod:`jetimage.particles`), (particles, features); the
  module's ``forward(particles, mask)`` with ``mask`` (batch, particles) 1 for a real particle
  and 0 for padding, which must change no output.

Training, streaming, checkpoints, ONNX export (one named input per tensor of
:data:`TENSORS`), evaluation and prediction follow the declaration; adding an architecture is
one factory here. Image factories work for any image size and channel count. Importing this
module does not import torch (the factories do), so the config reads the registry's names and
options without it.

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
#: The view of a jet each architecture takes: ``"images"`` or ``"particles"``.
INPUTS: dict[str, str] = {}
#: The tensors (and ONNX inputs, in order) of each kind of input.
TENSORS = {"images": ("images",), "particles": ("particles", "mask")}
#: Smallest image side an architecture accepts (two 2×2 max-pools need 4 pixels); others: 1.
MIN_PIXELS: dict[str, int] = {"hsf-cnn": 4, "deeptop-cnn": 4}


def register(name: str, inputs: str = "images"):
    """Decorator adding a factory to :data:`MODELS` under ``name``, taking ``inputs``."""
    if inputs not in TENSORS:
        msg = f"inputs must be one of {sorted(TENSORS)}, not {inputs!r}"
        raise ValueError(msg)

    def add(factory):
        MODELS[name] = factory
        INPUTS[name] = inputs
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
    if INPUTS[architecture] == "images" and min(in_shape[1:]) < MIN_PIXELS.get(architecture, 1):
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
#: Architectures fitted in closed form rather than by gradient descent.
CLOSED_FORM = ("fisher",)


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


def _imagenet_resnet(architecture: str):
    """A factory of torchvision's ``architecture`` (:mod:`jetimage.resnets`) for jet images."""

    def factory(in_shape, n_classes, *, small_images: bool = True):
        from jetimage.resnets import build

        return build(architecture, in_shape[0], n_classes, small_images=small_images)

    factory.__doc__ = (
        f"torchvision's {architecture} (He et al., arXiv:1512.03385) for jet images: the first "
        "convolution takes the run's channels (fastai's rule when ImageNet weights are loaded "
        "into it), the head its classes; ``small_images`` (default true) drops the first "
        "convolution's stride and the max-pool, which would leave 40×40 images 2×2 pixels in "
        "the last stage. ``init: {from: imagenet}`` starts it from ImageNet weights."
    )
    return factory


for _name in ("resnet18", "resnet34"):
    register(_name)(_imagenet_resnet(_name))
#: Architectures whose ImageNet weights ``init: {from: imagenet}`` loads.
IMAGENET = ("resnet18", "resnet34")


def feature_columns(identities: bool) -> list[int]:
    """The columns of the particle view (:data:`jetimage.particles.FEATURES`) a particle model
    reads: all, or all but the charge and particle-type ones. Every particle architecture
    takes the option ``identities`` (default true), which :mod:`jetimage.predict` reads to
    refuse a file without them."""
    from jetimage.particles import FEATURES, IDENTITY_FEATURES

    return [i for i, f in enumerate(FEATURES) if identities or f not in IDENTITY_FEATURES]


@register("pfn", inputs="particles")
def pfn(
    in_shape,
    n_classes,
    *,
    phi: tuple[int, ...] = (100, 100, 256),
    f: tuple[int, ...] = (100, 100, 100),
    dropout: float = 0.0,
    identities: bool = True,
):
    """Particle Flow Network (Komiske, Metodiev, Thaler, arXiv:1810.05165), a Deep Set: a
    network Φ (``phi``: its layers' widths, the last the latent size; ReLU throughout) maps
    each particle's features, the masked sum over the particles makes the jet's latent vector,
    and a network F (``f``) classifies it. Defaults: the paper's (Φ 100, 100, 256; F 100, 100,
    100). ``identities: false`` leaves out the charge and particle-type features (the paper's
    PFN against PFN-ID; for inputs without them, as the Top Tagging set). Invariant under any
    permutation of the particles, blind to padding."""
    from jetimage.layers import ParticleFlow

    return ParticleFlow(feature_columns(identities), phi, f, n_classes, dropout)


@register("particlenet", inputs="particles")
def particlenet(
    in_shape,
    n_classes,
    *,
    k: int = 7,
    channels: tuple[int, ...] = (32, 64),
    dense: tuple[int, ...] = (128,),
    dropout: float = 0.1,
    identities: bool = True,
    hardest: int = 0,
):
    """ParticleNet (Qu and Gouskos, arXiv:1902.08570): one EdgeConv block per entry of
    ``channels`` (three 1×1 convolutions of that width on each particle's ``k`` nearest
    neighbours), the first block's neighbours in (Δη, Δφ), the next ones' in the previous
    block's features; the last block's averaged over the real particles and classified by
    ``dense`` layers. Defaults: ParticleNet-Lite (k 7, channels 32, 64, dense 128); the paper's
    network: k 16, channels 64, 128, 256, dense 256. ``hardest``: read only that many of the
    hardest particles of the view (0: all; the cost grows with the particles). Invariant under
    permutations of the particles up to ties among neighbour distances, blind to padding."""
    from jetimage.layers import ParticleNet
    from jetimage.particles import FEATURES

    blocks = tuple((k, (c, c, c)) for c in channels)
    coordinates = [FEATURES.index("deta"), FEATURES.index("dphi")]
    return ParticleNet(
        feature_columns(identities),
        coordinates,
        blocks,
        tuple(dense),
        n_classes,
        dropout,
        hardest=hardest or None,
    )


@register("part", inputs="particles")
def part(
    in_shape,
    n_classes,
    *,
    embed: tuple[int, ...] = (64, 64),
    pair: tuple[int, ...] = (32,),
    heads: int = 4,
    blocks: int = 3,
    class_blocks: int = 1,
    dropout: float = 0.1,
    identities: bool = True,
    hardest: int = 0,
):
    """Particle Transformer (Qu, Li, Qian, arXiv:2202.03772): particle embedding (``embed``:
    the MLP's widths, the last the model width), ``blocks`` particle attention blocks of
    ``heads`` heads biased by the pairs' ln Δ, ln kT, ln z, ln m² (embedded by an MLP of
    widths ``pair``), ``class_blocks`` class attention blocks. Defaults: a
    small network for a CPU; the paper's: embed 128, 512, 128, pair 64, 64, 64, heads 8,
    blocks 8, class_blocks 2. ``hardest``: read only that many of the hardest particles (0:
    all; the pair features grow with their square). Invariant under permutations of the
    particles, blind to padding."""
    from jetimage.layers import ParticleTransformer
    from jetimage.particles import FEATURES, MOMENTUM_FEATURES

    momenta = [FEATURES.index(f) for f in MOMENTUM_FEATURES]
    return ParticleTransformer(
        feature_columns(identities),
        momenta,
        tuple(embed),
        tuple(pair),
        heads,
        blocks,
        class_blocks,
        n_classes,
        dropout,
        n_features=len(FEATURES),
        hardest=hardest or None,
    )


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

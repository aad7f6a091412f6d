"""torchvision's ResNets (He et al., arXiv:1512.03385), adapted to jet images, and their
ImageNet weights read from torch's own cache.

The networks are torchvision's ``resnet18`` and ``resnet34`` when torchvision imports, and
otherwise a copy of their definition with the same modules, parameter names and
initialisation (:class:`ResNet`), so that torchvision's weight files load into either: the
PyPI wheel of torchvision is built against CUDA and does not import beside the CPU build of
torch this project installs with pip (conda environments have both). Adapted to jet images:
the first convolution takes the run's channels and the head gives its classes; with
``small_images`` the first convolution has stride 1 and the max-pool is left out (on 40×40
images the original stem would leave 2×2 pixels for the last stage).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

#: Blocks per stage of each depth, and the file torchvision keeps its ImageNet weights in.
DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
WEIGHT_FILES = {"resnet18": "resnet18-f37072fd.pth", "resnet34": "resnet34-b627a593.pth"}
WEIGHTS_URL = "https://download.pytorch.org/models/"


class _Block(nn.Module):
    """torchvision's ``BasicBlock``: two 3×3 convolutions with batch norm and a shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, x):
        """The block's output: the convolutions plus the shortcut, through a ReLU."""
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """torchvision's ``ResNet`` with basic blocks (ResNet-18 and -34), the same parameter names
    and initialisation (Kaiming-normal convolutions, unit batch-norm weights)."""

    def __init__(self, blocks: tuple[int, ...], num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = 64
        for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
            stages = [_Block(c_in, width, 1 if i == 0 else 2)]
            stages += [_Block(width, width, 1) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stages))
            c_in = width
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        """Class logits of a batch of images."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _torchvision(architecture: str, n_classes: int) -> nn.Module | None:
    """torchvision's network of that name, or None where torchvision does not import."""
    try:
        import torchvision.models
    except (ImportError, RuntimeError, OSError):  # RuntimeError: a CUDA wheel beside CPU torch
        return None
    return getattr(torchvision.models, architecture)(weights=None, num_classes=n_classes)


def build(architecture: str, in_channels: int, n_classes: int, *, small_images: bool) -> nn.Module:
    """torchvision's ``architecture`` (or its copy) for ``in_channels`` input channels and
    ``n_classes`` classes, with the small-image stem when ``small_images``."""
    model = _torchvision(architecture, n_classes) or ResNet(DEPTHS[architecture], n_classes)
    stride = 1 if small_images else 2
    if in_channels != 3 or small_images:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, stride, 3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    if small_images:
        model.maxpool = nn.Identity()
    return model


def weights_path(architecture: str) -> Path:
    """Where torch keeps torchvision's ImageNet weights of ``architecture``:
    ``$TORCH_HOME/hub/checkpoints/<file>`` (``~/.cache/torch`` without ``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHT_FILES[architecture]


def imagenet_weights(architecture: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights of ``architecture`` from torch's cache, downloaded there
    first if they are missing and the network allows; a FileNotFoundError naming the file, the
    folder to put it in and its address otherwise."""
    if architecture not in WEIGHT_FILES:
        msg = f"no ImageNet weights for {architecture!r}; there are for {sorted(WEIGHT_FILES)}"
        raise ValueError(msg)
    path = weights_path(architecture)
    url = WEIGHTS_URL + WEIGHT_FILES[architecture]
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, os.fspath(path), progress=False)
        except OSError as err:  # no network: URLError is an OSError
            msg = (
                f"the ImageNet weights of {architecture} are not in torch's cache and could "
                f"not be downloaded ({err}): put {url} at {path} (the folder is "
                f"$TORCH_HOME/hub/checkpoints; TORCH_HOME is {os.environ.get('TORCH_HOME')!r})"
            )
            raise FileNotFoundError(msg) from err
    return torch.load(path, map_location="cpu", weights_only=True)


#: The tensors of torchvision's ResNets that ImageNet's weights do not fit: its 1000-class head.
HEAD = ("fc.weight", "fc.bias")


def check_fit(architecture: str, report: dict) -> None:
    """Raise if ImageNet weights loaded into ``architecture`` left more than the head (and what
    was excluded) unloaded, or brought tensors with no place: a weight file that is not
    torchvision's ``architecture``, or a network that is not (``report``:
    :func:`jetimage.transfer.load_weights`'s)."""
    missing = [
        n for n, why in report["skipped"].items() if n not in HEAD and not why.startswith("excl")
    ]
    if missing or report["unused"]:
        msg = (
            f"the ImageNet weights at {weights_path(architecture)} do not fit torchvision's "
            f"{architecture}: not loaded {missing[:5]}, with no place {report['unused'][:5]}"
        )
        raise ValueError(msg)

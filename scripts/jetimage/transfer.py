"""Transfer learning: start a model from another one's weights, fine-tune it in fastai's two
phases, schedule it with one cycle, and find its learning rate.

- :func:`load_weights` copies every tensor of a parent (a ``model.pt`` of any run, or
  torchvision's ImageNet weights) whose name and shape the child shares, adapts the first
  convolution to the child's channels by fastai's rule (:func:`adapt_channels`), and lists
  what it loaded, adapted and skipped, and why.
- :func:`layer_groups` splits a model into its top-level layers, in order; fine-tuning's first
  phase trains only the :func:`head` (the tensors not loaded from the parent, the last layer
  group and every batch norm, as fastai's ``freeze``), the second all of them with learning
  rates spread geometrically over the groups (:func:`discriminative_rates`).
- :class:`OneCycle` is fastai's ``fit_one_cycle`` policy, set per batch.
- :func:`lr_find` is fastai's learning-rate finder and :func:`valley` its suggestion.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable

import torch
from torch import nn

#: ``fine_tune``'s settings and their defaults: those of fastai's ``fine_tune``.
FINE_TUNE = {"freeze_epochs": 1, "lr_mult": 100.0}


def adapt_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """A convolution's ``weight`` (out, in, kh, kw) for ``channels`` input channels by fastai's
    rule (``_load_pretrained_weights``, stated for 3 input channels): one channel takes the
    sum of the filters, fewer than the parent's take its first ones scaled by their ratio (two
    of three: × 1.5), more take the parent's and zeros."""
    given = weight.shape[1]
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    if channels < given:
        return weight[:, :channels] * (given / channels)
    out = weight.new_zeros((weight.shape[0], channels, *weight.shape[2:]))
    out[:, :given] = weight
    return out


def _adaptable(source: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether ``source`` is a convolution weight that differs from ``target`` only in its
    input channels."""
    return (
        source.ndim == 4
        and target.ndim == 4
        and source.shape[0] == target.shape[0]
        and source.shape[2:] == target.shape[2:]
    )


def load_weights(
    model: nn.Module, state: dict[str, torch.Tensor], exclude: Iterable[str] = ()
) -> dict:
    """Copy the tensors of ``state`` into ``model`` where names and shapes agree (a convolution
    differing in input channels is adapted, :func:`adapt_channels`), except those whose name
    matches an ``exclude`` regular expression (``re.search``).

    Returns:
        ``{"loaded": [...], "adapted": [...], "skipped": {name: why}, "unused": [...]}``: the
        model's tensors copied as they are, copied adapted, and left as built; and the parent's
        tensors the model has no place for.
    """
    patterns = [re.compile(p) for p in exclude]
    own = model.state_dict()
    report: dict = {"loaded": [], "adapted": [], "skipped": {}, "unused": []}
    new = {}
    for name, target in own.items():
        hit = next((p.pattern for p in patterns if p.search(name)), None)
        source = state.get(name)
        if hit is not None:
            report["skipped"][name] = f"excluded by {hit!r}"
        elif source is None:
            report["skipped"][name] = "not in the parent"
        elif source.shape == target.shape:
            new[name] = source
            report["loaded"].append(name)
        elif _adaptable(source, target):
            new[name] = adapt_channels(source.to(target.dtype), target.shape[1])
            report["adapted"].append(name)
        else:
            report["skipped"][name] = (
                f"shape {tuple(source.shape)} in the parent, {tuple(target.shape)} here"
            )
    report["unused"] = sorted(set(state) - set(own))
    model.load_state_dict({**own, **new})
    return report


def freeze(model: nn.Module, patterns: Iterable[str]) -> list[str]:
    """Stop training the parameters whose names match a regular expression; their names."""
    compiled = [re.compile(p) for p in patterns]
    frozen = []
    for name, parameter in model.named_parameters():
        if any(p.search(name) for p in compiled):
            parameter.requires_grad_(False)
            frozen.append(name)
    return frozen


def layer_groups(model: nn.Module) -> list[list[str]]:
    """The names of a model's parameters grouped by its top-level layers, in order (the
    model's own parameters, if any, with the first group)."""
    groups: dict[str, list[str]] = {}
    for name, _ in model.named_parameters():
        top = name.split(".", 1)[0] if "." in name else ""
        groups.setdefault(top, []).append(name)
    own = groups.pop("", [])
    out = list(groups.values())
    if own:
        out = [own + out[0], *out[1:]] if out else [own]
    return out


def head(model: nn.Module, loaded: Iterable[str]) -> set[str]:
    """The parameters fine-tuning's first phase trains: those not loaded from the parent, the
    last layer group, and every batch norm's (fastai's ``freeze`` with ``train_bn``)."""
    names = {n for n, _ in model.named_parameters()}
    trained = (names - set(loaded)) | set(layer_groups(model)[-1])
    for module_name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            trained |= {f"{module_name}.{n}" for n, _ in module.named_parameters()}
    return trained


def discriminative_rates(base_lr: float, lr_mult: float, n: int) -> list[float]:
    """Learning rates of ``n`` layer groups spread geometrically from ``base_lr / lr_mult``
    (the first) to ``base_lr`` (the last), as fastai's ``slice(base_lr / lr_mult, base_lr)``."""
    if n == 1:
        return [base_lr]
    return [base_lr / lr_mult ** ((n - 1 - i) / (n - 1)) for i in range(n)]


def _cos(start: float, end: float, pos: float) -> float:
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


class OneCycle:
    """fastai's one-cycle policy over ``epochs`` epochs starting at ``first``: each group's rate
    rises from ``max_lr / div`` to ``max_lr`` over the first ``pct_start`` of the steps and falls
    to ``max_lr / div_final``, cosine-shaped; Adam's β₁ (SGD's momentum) moves the other way
    between 0.95 and 0.85. Set per batch by :meth:`at`; it keeps no state a checkpoint needs."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_lrs: list[float],
        *,
        epochs: int,
        first: int = 0,
        pct_start: float = 0.25,
        div: float = 25.0,
        div_final: float = 1e5,
    ):
        self.optimizer, self.max_lrs = optimizer, max_lrs
        self.epochs, self.first = epochs, first
        self.pct_start, self.div, self.div_final = pct_start, div, div_final
        self.at(first)

    def rates(self, epoch: float) -> tuple[list[float], float]:
        """The groups' learning rates and the momentum at a (fractional) epoch."""
        pos = min(max((epoch - self.first) / max(self.epochs, 1), 0.0), 1.0)  # 0 epochs: none
        if pos < self.pct_start:
            f = pos / self.pct_start
            return [_cos(m / self.div, m, f) for m in self.max_lrs], _cos(0.95, 0.85, f)
        f = (pos - self.pct_start) / (1 - self.pct_start)
        return [_cos(m, m / self.div_final, f) for m in self.max_lrs], _cos(0.85, 0.95, f)

    def at(self, epoch: float) -> None:
        """Set the optimizer's rates and momentum for a (fractional) epoch."""
        lrs, momentum = self.rates(epoch)
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
            if "betas" in group:
                group["betas"] = (momentum, group["betas"][1])
            elif "momentum" in group:
                group["momentum"] = momentum

    def step(self) -> None:
        """Nothing at the end of an epoch: the rates are set per batch."""

    def state_dict(self) -> dict:
        """Nothing to save: the rates follow from the epoch."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore."""


def valley(lrs: list[float], losses: list[float]) -> int:
    """fastai's ``valley`` suggestion: the index two-thirds of the way down the longest run of
    decreasing losses (its longest decreasing subsequence)."""
    n = len(losses)
    lengths = [1] * n
    start, end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
        if lengths[end] < lengths[i]:
            end, start = i, i - lengths[i]
    sections = (end - start) / 3
    return start + int(sections) + int(sections / 2)


def lr_find(
    step: Callable[[float], float],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    iterations: int = 100,
    beta: float = 0.98,
) -> dict:
    """fastai's learning-rate finder: ``step(lr)`` trains one batch at ``lr`` and returns its
    loss; the rate grows exponentially from ``start_lr`` to ``end_lr`` over ``iterations``
    batches and stops early once the smoothed loss exceeds four times its minimum.

    Returns:
        ``{"lrs", "losses"`` (exponentially smoothed, debiased), ``"suggestion"`` (the
        :func:`valley` rate), ``"minimum"`` (the rate of the lowest loss) ``}``.
    """
    lrs, losses, average = [], [], 0.0
    for i in range(iterations):
        lr = start_lr * (end_lr / start_lr) ** (i / (iterations - 1))
        loss = step(lr)
        average = beta * average + (1 - beta) * loss
        smoothed = average / (1 - beta ** (i + 1))
        if not math.isfinite(smoothed):
            break
        lrs.append(lr)
        losses.append(smoothed)
        if smoothed > 4 * min(losses):
            break
    best = min(range(len(losses)), key=losses.__getitem__)
    return {
        "lrs": lrs,
        "losses": losses,
        "suggestion": lrs[valley(lrs, losses)],
        "minimum": lrs[best],
    }


def parent_state(parent: str, architecture: str) -> tuple[dict[str, torch.Tensor], dict | None]:
    """The weights a child starts from and the parent's ``model.pt`` info (None for
    ``"imagenet"``, torchvision's weights of ``architecture``); ``parent`` is a path otherwise."""
    if parent == "imagenet":
        from jetimage.resnets import imagenet_weights

        return imagenet_weights(architecture), None
    saved = torch.load(parent, map_location="cpu", weights_only=True)
    return saved["state_dict"], saved["info"]


def kept_normalization(info: dict | None, inputs: str, own: dict) -> tuple[dict, str]:
    """The input standardisation a child trains with: its parent's (the weights expect it) when
    the parent took the same inputs with as many channels or features, its dataset's (``own``)
    otherwise; and whose it is."""
    if (
        info is not None
        and info.get("inputs") == inputs
        and len(info["normalization"]["mean"]) == len(own["mean"])
    ):
        return dict(info["normalization"]), f"the parent's ({info['name']})"
    return own, "this dataset's"

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


def hardest_of(particles: torch.Tensor, mask: torch.Tensor, n: int | None):
    """The first ``n`` particles and their mask (all if ``None``): the view is ordered by
    decreasing pT, so these are the hardest."""
    return (particles, mask) if n is None else (particles[:, :n], mask[:, :n])


def knn(points: torch.Tensor, k: int) -> torch.Tensor:
    """(batch, particles, k): the indices of each particle's ``k`` nearest others in
    ``points`` (batch, coordinates, particles), itself left out."""
    points = points.detach()  # the graph is not differentiated
    inner = torch.matmul(points.transpose(1, 2), points)
    square = (points * points).sum(dim=1, keepdim=True)
    distance = square.transpose(1, 2) - 2 * inner + square
    n = points.shape[-1]
    itself = torch.eye(n, dtype=torch.bool, device=points.device)
    return distance.masked_fill(itself, float("inf")).topk(k, dim=-1, largest=False).indices


def neighbours_of(x: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """(batch, channels, particles, k): the features ``x`` (batch, channels, particles) of
    each particle's ``neighbours`` (batch, particles, k)."""
    batch, channels, n = x.shape
    k = neighbours.shape[-1]
    flat = x.transpose(1, 2).reshape(batch * n, channels)
    offset = torch.arange(batch, device=x.device).view(-1, 1, 1) * n
    theirs = flat[(neighbours + offset).reshape(-1)].view(batch, n, k, channels)
    return theirs.permute(0, 3, 1, 2)


class EdgeConv(nn.Module):
    """ParticleNet's EdgeConv block: for each particle and each of its ``k`` nearest
    neighbours, an MLP of (its features x_i, the difference x_j − x_i), averaged over the
    neighbours, plus a shortcut of its features. The MLP's first layer, linear in
    (x_i, x_j − x_i), is computed per particle and gathered per edge (W x_i + V x_j, with
    W and V the layer's two halves recombined): the same function as a 1×1 convolution on
    the concatenated edge features, with ``k`` times fewer products in that layer."""

    def __init__(self, k: int, c_in: int, widths: tuple[int, ...]):
        super().__init__()
        self.k = k
        self.own = nn.Conv1d(c_in, widths[0], 1, bias=False)  # on x_i (and −x_i of the difference)
        self.other = nn.Conv1d(c_in, widths[0], 1, bias=False)  # on x_j
        layers: list[nn.Module] = [nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(w_in, w_out, 1, bias=False), nn.BatchNorm2d(w_out), nn.ReLU()]
        self.mlp = nn.Sequential(*layers)
        self.shortcut = (
            nn.Sequential(nn.Conv1d(c_in, widths[-1], 1, bias=False), nn.BatchNorm1d(widths[-1]))
            if c_in != widths[-1]
            else nn.Identity()
        )
        self.relu = nn.ReLU()

    def forward(self, points: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """New features (batch, widths[-1], particles), the graph built in ``points``."""
        neighbours = knn(points, self.k)
        first = self.own(x).unsqueeze(-1) + neighbours_of(self.other(x), neighbours)
        return self.relu(self.mlp(first).mean(dim=-1) + self.shortcut(x))


class ParticleNet(nn.Module):
    """ParticleNet (Qu and Gouskos, arXiv:1902.08570): EdgeConv blocks, the first on the
    nearest neighbours in (Δη, Δφ) (the ``coordinates`` columns), the next in the previous
    block's feature space; the last block's features averaged over the real particles and
    classified by dense layers (the paper's network, without weaver's later fusion of the
    blocks). Padded particles are moved far away (never a real particle's neighbour) and
    masked after every block. ``hardest``: only the first (hardest) that many particles."""

    columns: torch.Tensor
    coordinates: torch.Tensor

    def __init__(
        self,
        columns: list[int],
        coordinates: list[int],
        blocks: tuple[tuple[int, tuple[int, ...]], ...],
        dense: tuple[int, ...],
        n_classes: int,
        dropout: float,
        hardest: int | None = None,
    ):
        super().__init__()
        self.hardest = hardest
        self.register_buffer("columns", torch.tensor(columns), persistent=False)
        self.register_buffer("coordinates", torch.tensor(coordinates), persistent=False)
        convs, c_in = [], len(columns)
        for k, widths in blocks:
            convs.append(EdgeConv(k, c_in, tuple(widths)))
            c_in = widths[-1]
        self.blocks = nn.ModuleList(convs)
        self.k_max = max(k for k, _ in blocks)
        self.head = nn.Sequential(
            *dense_stack((c_in, *dense), dropout),
            nn.Linear(dense[-1] if dense else c_in, n_classes),
        )

    def forward(self, particles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        particles, mask = hardest_of(particles, mask, self.hardest)
        short = self.k_max + 1 - particles.shape[1]
        if short > 0:  # a neighbour for everyone: padding, which changes no score
            particles = nn.functional.pad(particles, (0, 0, 0, short))
            mask = nn.functional.pad(mask, (0, short))
        mask = mask.unsqueeze(1)  # (batch, 1, particles)
        x = particles.index_select(-1, self.columns).transpose(1, 2) * mask
        far = (1 - mask) * 1e9
        points = particles.index_select(-1, self.coordinates).transpose(1, 2) * mask + far
        for block in self.blocks:
            x = block(points, x) * mask
            points = x + far
        counts = mask.sum(dim=-1).clamp(min=1)
        return self.head(x.sum(dim=-1) / counts)


def pair_features(p4: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(batch, particles, particles, 4): Particle Transformer's interaction features of every
    pair (a, b) from the four-momenta ``p4`` (batch, particles; px, py, pz, E): ln Δ, ln kT,
    ln z and ln m², with Δ² = Δy² + Δφ², kT = min(pT_a, pT_b) Δ, z = min(pT_a, pT_b) /
    (pT_a + pT_b) and m² = (p_a + p_b)²; each argument floored at ``eps``."""
    px, py, pz, e = p4.unbind(-1)
    pt = torch.sqrt(px * px + py * py).clamp(min=eps)
    rapidity = 0.5 * torch.log((e + pz).clamp(min=eps) / (e - pz).clamp(min=eps))
    phi = torch.atan2(py, px)
    dy = rapidity.unsqueeze(-1) - rapidity.unsqueeze(-2)
    dphi = phi.unsqueeze(-1) - phi.unsqueeze(-2)
    dphi = torch.atan2(torch.sin(dphi), torch.cos(dphi))  # into (−π, π]
    delta = torch.sqrt(dy * dy + dphi * dphi)
    softer = torch.minimum(pt.unsqueeze(-1), pt.unsqueeze(-2))
    z = softer / (pt.unsqueeze(-1) + pt.unsqueeze(-2))
    total = p4.unsqueeze(2) + p4.unsqueeze(1)
    m2 = total[..., 3] ** 2 - total[..., 0] ** 2 - total[..., 1] ** 2 - total[..., 2] ** 2
    features = (delta, softer * delta, z, m2)
    return torch.stack([torch.log(f.clamp(min=eps)) for f in features], dim=-1)


class Attention(nn.Module):
    """Multi-head attention with an additive bias on the attention logits (−∞ masks a key);
    written out, rather than ``nn.MultiheadAttention``, so that it exports to ONNX with a
    dynamic batch axis."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            msg = f"the model width {dim} must be a multiple of the {heads} heads"
            raise ValueError(msg)
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """(batch, queries, dim) attending to ``keys`` (batch, keys, dim), with ``bias``
        broadcastable to (batch, heads, queries, keys)."""
        batch, n_query, dim = query.shape
        width = dim // self.heads
        q = self.query(query).reshape(batch, n_query, self.heads, width).transpose(1, 2)
        kv = self.key_value(keys).reshape(batch, keys.shape[1], 2, self.heads, width)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        weights = torch.softmax(q @ k.transpose(-1, -2) * width**-0.5 + bias, dim=-1)
        mixed = (self.dropout(weights) @ v).transpose(1, 2).reshape(batch, n_query, dim)
        return self.out(mixed)


class AttentionBlock(nn.Module):
    """A pre-norm transformer block: multi-head attention (with an additive per-head bias
    and the padding masked) and a feed-forward network, each with a residual. As a class
    attention block (``cls`` given) only the class token queries, the particles and itself
    are the keys."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = Attention(dim, heads, dropout)
        self.ffn = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        )

    def forward(self, x, bias, cls=None):
        """The block's output for ``x`` (batch, particles, dim) with the additive attention
        ``bias`` (−∞ for padded keys): (batch, heads, particles, particles) for particle
        attention, or (batch, 1, 1, 1 + particles) for the class token ``cls`` (batch, 1,
        dim)."""
        if cls is None:
            h = self.norm(x)
            x = x + self.attention(h, h, bias)
        else:
            h = self.norm(torch.cat((cls, x), dim=1))
            x = cls + self.attention(h[:, :1], h, bias)
        return x + self.ffn(x)


class ParticleTransformer(nn.Module):
    """Particle Transformer (Qu, Li, Qian, arXiv:2202.03772): each particle's features
    embedded by an MLP, particle attention blocks whose attention is biased per head by an
    embedding of the pairs' interaction features (:func:`pair_features`, from the particles'
    four-momenta, the ``momenta`` columns, un-standardised with the statistics that
    :meth:`standardized_with` records), then class attention blocks that pool the particles
    into a class token, which a linear layer classifies. Padded particles are masked out of
    every attention. ``hardest``: only the first (hardest) that many particles."""

    columns: torch.Tensor
    momenta: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        columns: list[int],
        momenta: list[int],
        embed: tuple[int, ...],
        pair: tuple[int, ...],
        heads: int,
        blocks: int,
        class_blocks: int,
        n_classes: int,
        dropout: float,
        n_features: int,
        hardest: int | None = None,
    ):
        super().__init__()
        self.hardest = hardest
        self.register_buffer("columns", torch.tensor(columns), persistent=False)
        self.register_buffer("momenta", torch.tensor(momenta), persistent=False)
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        layers: list[nn.Module] = []
        for w_in, w_out in zip((len(columns), *embed[:-1]), embed):
            layers += [nn.LayerNorm(w_in), nn.Linear(w_in, w_out), nn.GELU()]
        self.embed = nn.Sequential(*layers)
        self.pair_norm = nn.BatchNorm1d(4)  # each pair feature standardised over the pairs
        pairs: list[nn.Module] = []
        for w_in, w_out in zip((4, *pair[:-1]), pair):
            pairs += [nn.Linear(w_in, w_out), nn.GELU()]
        self.pair = nn.Sequential(*pairs, nn.Linear(pair[-1] if pair else 4, heads))
        dim = embed[-1]
        self.blocks = nn.ModuleList(AttentionBlock(dim, heads, dropout) for _ in range(blocks))
        self.class_blocks = nn.ModuleList(
            AttentionBlock(dim, heads, 0.0) for _ in range(class_blocks)
        )
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, n_classes))

    def standardized_with(self, normalization: dict) -> None:
        """Record the per-feature mean and standard deviation the inputs were standardised
        with, so that the four-momenta of the pair features are the physical ones."""
        self.mean.copy_(torch.as_tensor(normalization["mean"], dtype=torch.float32))
        self.std.copy_(torch.as_tensor(normalization["std"], dtype=torch.float32))

    def momenta_of(self, particles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(batch, particles, 4): the physical px, py, pz, E of standardised ``particles``
        (zero for the padding)."""
        p4 = (particles * self.std + self.mean).index_select(-1, self.momenta)
        return p4 * mask.unsqueeze(-1)

    def forward(self, particles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        particles, mask = hardest_of(particles, mask, self.hardest)
        batch, n = mask.shape
        padding = (mask == 0)[:, None, None, :]  # (batch, 1, 1, particles): keys to ignore
        pairs = pair_features(self.momenta_of(particles, mask))
        pairs = self.pair_norm(pairs.reshape(-1, 4)).reshape(batch, n, n, 4)
        bias = self.pair(pairs).permute(0, 3, 1, 2)  # (batch, heads, particles, particles)
        bias = bias.masked_fill(padding, float("-inf"))
        x = self.embed(particles.index_select(-1, self.columns))
        for block in self.blocks:
            x = block(x, bias)
        cls = self.cls.expand(batch, -1, -1)
        keys = torch.zeros(batch, 1, 1, n + 1, dtype=x.dtype, device=x.device)
        keys = keys.masked_fill(nn.functional.pad(padding, (1, 0)), float("-inf"))
        for block in self.class_blocks:
            cls = block(x, keys, cls=cls)
        return self.head(cls.squeeze(1))

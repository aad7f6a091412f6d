"""The compiled substructure kernel: FastJet contrib's observables in one pass per jet (numba).

One call handles a batch of jets given as flat constituent arrays and offsets. For each jet it
reclusters the constituents twice — Cambridge/Aachen for soft drop, kT for the N-subjettiness
axes — each in O(n²) with nearest-neighbour bookkeeping, walks the C/A tree for soft drop, refines
the exclusive kT axes with the one-pass minimisation of N-subjettiness, and sums the energy
correlators of the groomed constituents in one pass over their pairs and one over their triples.

Every formula and every discrete choice is FastJet's or FastJet contrib's (Nsubjettiness 2.2,
RecursiveTools' SoftDrop, EnergyCorrelator 1.3): the kinematics of a PseudoJet (its rapidity and
φ, E-scheme sums, the signed mass), the clustering distances, the soft-drop recursion (the harder
branch by pT², a strict symmetry cut), the one-pass axes (kT seeds, Weiszfeld-like updates with
the 1e-4 regulator, up to 1000 steps, an axis without particles kept where it was), the normalised
τ and the correlators' normalisations, including what they return for too few constituents. The
tests hold the results to FastJet contrib's, jet by jet.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from jetimage.substructure import COLUMNS

TWO_PI = 2.0 * math.pi
MAX_RAP = 1e5  # FastJet's rapidity of a zero-pT momentum
ACCURACY = 1e-4  # the one-pass minimisation's accuracy and regulator (AxesDefinition)
ATTEMPTS = 1000  # its maximum number of steps

N_COLUMNS = len(COLUMNS)  # the output's columns: jetimage.substructure.COLUMNS


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _rap_phi(px, py, pz, e):
    """(pT², rapidity, φ in [0, 2π)) of a four-momentum, as FastJet's PseudoJet computes them."""
    kt2 = px * px + py * py
    phi = 0.0 if kt2 == 0.0 else math.atan2(py, px)
    if phi < 0.0:
        phi += TWO_PI
    if phi >= TWO_PI:
        phi -= TWO_PI
    if e == abs(pz) and kt2 == 0.0:
        rap = MAX_RAP + abs(pz)
        return kt2, (rap if pz >= 0.0 else -rap), phi
    m2 = (e + pz) * (e - pz) - kt2
    e_plus_pz = e + abs(pz)
    rap = 0.5 * math.log((kt2 + max(0.0, m2)) / (e_plus_pz * e_plus_pz))
    return kt2, (-rap if pz > 0.0 else rap), phi


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _distance2(rap1, phi1, rap2, phi2):
    """ΔR² in (rapidity, φ), φ difference folded into [0, π]."""
    dphi = abs(phi1 - phi2)
    if dphi > math.pi:
        dphi = TWO_PI - dphi
    drap = rap1 - rap2
    return dphi * dphi + drap * drap


@numba.njit(cache=True, nogil=True, error_model="numpy")
def kinematics(p):
    """(pT², rapidity, φ, ΔR² matrix) of one jet's constituents ``p`` (n, 4)."""
    n = p.shape[0]
    kt2, rap, phi = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        kt2[i], rap[i], phi[i] = _rap_phi(p[i, 0], p[i, 1], p[i, 2], p[i, 3])
    d2 = np.empty((n, n))
    for i in range(n):
        d2[i, i] = 0.0
        for j in range(i):
            d2[i, j] = d2[j, i] = _distance2(rap[i], phi[i], rap[j], phi[j])
    return kt2, rap, phi, d2


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _scan(row):
    """(index, value) of the smallest entry of ``row`` (the first of equals)."""
    arg, best = -1, np.inf
    for t in range(len(row)):
        if row[t] < best:
            arg, best = t, row[t]
    return arg, best


@numba.njit(cache=True, nogil=True, error_model="numpy")
def cluster(p, kt2_p, rap_p, phi_p, d2, kt):
    """The full clustering tree of one jet's constituents ``p`` (n, 4: px, py, pz, E).

    Cambridge/Aachen (``kt`` False: d = ΔR²) or kT (True: d = min(pT²) ΔR²), E-scheme, merged
    pairwise down to one jet (the radius plays no part inside a jet), the closest pair first;
    a matrix of the alive pairs' distances and each one's nearest neighbour keep it O(n²).
    Nodes 0..n-1 are the constituents, node n + k the k-th merger. Returns (momenta (2n-1, 4),
    pT², rapidity, φ, children (2n-1, 2), -1 for leaves).
    """
    n = p.shape[0]
    m = 2 * n - 1
    mom = np.empty((m, 4))
    kt2, rap, phi = np.empty(m), np.empty(m), np.empty(m)
    children = np.full((m, 2), -1, np.int64)
    mom[:n], kt2[:n], rap[:n], phi[:n] = p, kt2_p, rap_p, phi_p
    dist = np.empty((n, n))  # between the alive slots 0..alive-1; inf on the diagonal
    for s in range(n):
        for t in range(n):
            dist[s, t] = d2[s, t] * min(kt2[s], kt2[t]) if kt else d2[s, t]
        dist[s, s] = np.inf
    node = np.arange(n)
    slot_kt2, slot_rap, slot_phi = kt2[:n].copy(), rap[:n].copy(), phi[:n].copy()
    nn, nnd = np.empty(n, np.int64), np.empty(n)
    stale = np.zeros(n, np.bool_)
    for s in range(n):
        nn[s], nnd[s] = _scan(dist[s])
    for alive in range(n, 1, -1):
        s, _ = _scan(nnd[:alive])
        t, new = nn[s], 2 * n - alive
        mom[new] = mom[node[s]] + mom[node[t]]
        kt2[new], rap[new], phi[new] = _rap_phi(mom[new, 0], mom[new, 1], mom[new, 2], mom[new, 3])
        children[new, 0], children[new, 1] = node[s], node[t]
        node[s], slot_kt2[s], slot_rap[s], slot_phi[s] = new, kt2[new], rap[new], phi[new]
        for u in range(alive):
            stale[u] = nn[u] == s or nn[u] == t
        last = alive - 1  # moves into slot t
        if t != last:
            node[t], nn[t], nnd[t], stale[t] = node[last], nn[last], nnd[last], stale[last]
            slot_kt2[t], slot_rap[t], slot_phi[t] = slot_kt2[last], slot_rap[last], slot_phi[last]
            dist[t, :alive] = dist[last, :alive]
            dist[:alive, t] = dist[:alive, last]
            dist[t, t] = np.inf
            s = t if s == last else s
            for u in range(last):
                nn[u] = t if nn[u] == last else nn[u]
        row = dist[s]
        for u in range(last):
            d = _distance2(slot_rap[s], slot_phi[s], slot_rap[u], slot_phi[u])
            row[u] = d * min(slot_kt2[s], slot_kt2[u]) if kt else d
        row[s] = np.inf
        dist[:last, s] = row[:last]
        for u in range(last):
            if u != s:
                if stale[u]:
                    nn[u], nnd[u] = _scan(dist[u, :last])
                elif row[u] < nnd[u]:
                    nn[u], nnd[u] = s, row[u]
        nn[s], nnd[s] = _scan(row[:last])
    return mom, kt2, rap, phi, children


@numba.njit(cache=True, nogil=True, error_model="numpy")
def soft_drop(kt2, rap, phi, children, z_cut, beta, r0):
    """The node soft drop keeps (FastJet contrib's SoftDrop in grooming mode), -1 for none.

    From the root of a C/A tree: while the node has parents, stop where min(pT1, pT2)/(pT1 + pT2)
    > z_cut (ΔR12/R0)^β, else follow the parent of larger pT².
    """
    node = len(kt2) - 1
    while children[node, 0] >= 0:
        if kt2[node] <= 0.0:
            return -1
        a, b = children[node, 0], children[node, 1]
        if kt2[a] < kt2[b]:
            a, b = b, a
        pt1, pt2 = math.sqrt(kt2[a]), math.sqrt(kt2[b])
        total = pt1 + pt2
        if total == 0.0:
            return -1
        cut = z_cut * (_distance2(rap[a], phi[a], rap[b], phi[b]) / (r0 * r0)) ** (0.5 * beta)
        if min(pt1, pt2) / total > cut:
            return node
        node = a if kt2[a] > kt2[b] else b
    return node


@numba.njit(cache=True, nogil=True, error_model="numpy")
def leaves(children, node):
    """The constituents (leaf nodes) under ``node``."""
    out = np.empty(len(children), np.int64)
    stack = np.empty(len(children), np.int64)
    stack[0], depth, count = node, 1, 0
    while depth > 0:
        depth -= 1
        here = stack[depth]
        if children[here, 0] < 0:
            out[count] = here
            count += 1
        else:
            stack[depth], stack[depth + 1] = children[here, 0], children[here, 1]
            depth += 2
    return out[:count]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def exclusive_axes(mom, children, n_axes):
    """The momenta of the exclusive jets when ``n_axes`` remain (FastJet's exclusive_jets)."""
    n = (len(mom) + 1) // 2
    stop = 2 * n - n_axes  # nodes below this index exist at that stage
    out = np.empty((n_axes, 4))
    count = 0
    for k in range(stop, len(mom)):
        for c in range(2):
            child = children[k, c]
            if child < stop:
                out[count] = mom[child]
                count += 1
    if stop == len(mom):  # one axis: the whole jet
        out[0] = mom[len(mom) - 1]
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _update_axes(axes, mom_axes, pt, rap, phi, p, new, new_mom, sums):
    """One step of N-subjettiness's one-pass minimisation for β = 1 (DefaultMeasure::UpdateAxes)
    from ``axes`` (rapidity, φ) into ``new``: each particle goes to its nearest axis; each axis
    moves to the pT/ΔR-weighted mean (rapidity, φ) of its particles and takes their summed |p|;
    an axis without particles stays."""
    n_axes = axes.shape[0]
    sums[:] = 0.0  # rapidity, φ, weight, px, py, pz
    for i in range(len(pt)):
        k_assign, smallest = -1, np.inf
        for k in range(n_axes):
            d = _distance2(axes[k, 0], axes[k, 1], rap[i], phi[i])
            if d < smallest:
                k_assign, smallest = k, d
        if smallest > 1e6:  # beyond the measure's cutoff, R = 1000
            continue
        inverse = 1.0 / math.sqrt(ACCURACY * ACCURACY + smallest)
        dphi = phi[i] - axes[k_assign, 1]
        shifted = phi[i]
        if dphi > math.pi:
            shifted = phi[i] - TWO_PI
        elif dphi < -math.pi:
            shifted = phi[i] + TWO_PI
        row = sums[k_assign]
        row[0] += pt[i] * rap[i] * inverse
        row[1] += pt[i] * shifted * inverse
        row[2] += pt[i] * inverse
        row[3] += p[i, 0]
        row[4] += p[i, 1]
        row[5] += p[i, 2]
    for k in range(n_axes):
        row = sums[k]
        if row[2] != 0.0:
            new[k, 0] = row[0] / row[2]
            new[k, 1] = np.fmod(row[1] / row[2] + TWO_PI, TWO_PI)
            new_mom[k] = math.sqrt(row[3] * row[3] + row[4] * row[4] + row[5] * row[5])
        else:
            new[k, 0], new[k, 1], new_mom[k] = axes[k, 0], axes[k, 1], mom_axes[k]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _light_like(rap, phi, e):
    """(rapidity, φ) of the massless PseudoJet of energy e along (rap, φ) (LightLikeAxis)."""
    ex = math.exp(2.0 * rap)
    pz = (ex - 1.0) / (ex + 1.0) * e
    pt = math.sqrt(e**2 - pz**2)
    _, r, f = _rap_phi(math.cos(phi) * pt, math.sin(phi) * pt, pz, e)
    return r, f


@numba.njit(cache=True, nogil=True, error_model="numpy")
def one_pass_axes(seeds, pt, rap, phi, p):
    """(n_axes, 2) (rapidity, φ) of the axes refined from ``seeds`` (n_axes, 4) as
    Nsubjettiness's OnePass axes do: update until the mean axis move is below 1e-4, at most
    1000 times, then make the axes light-like with the summed |p| of their particles."""
    n_axes = seeds.shape[0]
    axes = np.empty((n_axes, 2))
    mom_axes = np.zeros(n_axes)
    for k in range(n_axes):
        _, axes[k, 0], axes[k, 1] = _rap_phi(seeds[k, 0], seeds[k, 1], seeds[k, 2], seeds[k, 3])
    new, new_mom = np.empty((n_axes, 2)), np.empty(n_axes)
    sums = np.empty((n_axes, 6))
    change, steps = np.inf, 0
    while change > ACCURACY and steps < ATTEMPTS:
        steps += 1
        _update_axes(axes, mom_axes, pt, rap, phi, p, new, new_mom, sums)
        change = 0.0
        for k in range(n_axes):
            change += math.sqrt(_distance2(axes[k, 0], axes[k, 1], new[k, 0], new[k, 1]))
        change /= n_axes
        axes, new = new, axes
        mom_axes, new_mom = new_mom, mom_axes
    out = np.empty((n_axes, 2))
    for k in range(n_axes):
        out[k, 0], out[k, 1] = _light_like(axes[k, 0], axes[k, 1], mom_axes[k])
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def tau(axes, pt, rap, phi, r0):
    """Normalised N-subjettiness (β = 1): Σ pT min_k ΔR_k / (R0 Σ pT)."""
    numerator, denominator = 0.0, 0.0
    for i in range(len(pt)):
        smallest = np.inf
        for k in range(axes.shape[0]):
            smallest = min(smallest, _distance2(axes[k, 0], axes[k, 1], rap[i], phi[i]))
        if smallest > 0.0:
            numerator += pt[i] * math.sqrt(smallest)
        denominator += pt[i] * r0
    return numerator / denominator


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def correlators(pt, d2, out):
    """The energy-correlation ratios of one (groomed) jet's constituents into ``out``
    (``substructure.COLUMNS[5:18]``), from their pT and ΔR² matrix, in one pass over pairs and
    one over triples.

    ECF(N, β) as EnergyCorrelator (pT and ΔR, zero below N constituents); the generalised ECFG
    with v angles multiplies the v smallest θ^β of a triple, normalised by (Σ pT)^N. The sums
    may be reassociated (SIMD), which moves them in their last bits only.
    """
    n = len(pt)
    e1 = 0.0
    for i in range(n):
        e1 += pt[i]
    angle = np.sqrt(d2)
    e2 = np.zeros(3)  # ECF(2, β) for β = 0, 1, 2
    for i in range(n):
        for j in range(i):
            w = pt[i] * pt[j]
            e2[0] += w
            e2[1] += w * angle[i, j]
            e2[2] += w * d2[i, j]
    # for β = 1, 2: ECF(3), ECFG(1, 3) (the smallest angle), ECFG(2, 3) (the two smallest)
    s0 = s1 = s2 = s3 = s4 = s5 = 0.0
    for i in range(2, n):
        for j in range(1, i):
            wij = pt[i] * pt[j]
            aij = angle[i, j]
            row_i, row_j = angle[i], angle[j]
            for k in range(j):
                w = wij * pt[k]
                b, c = row_i[k], row_j[k]
                low, high = min(aij, b), max(aij, b)
                mid = min(max(low, c), high)
                low, high = min(low, c), max(high, c)
                two = low * mid
                three = two * high
                s0 += w * three
                s1 += w * low
                s2 += w * two
                s3 += w * three * three
                s4 += w * low * low
                s5 += w * two * two
    _ratios(e1, e2, np.array([s0, s1, s2, s3, s4, s5]), out)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _ratios(e1, e2, e3, out):
    """C1, C2, D2, D2^(1,β), M2 and N2 for β = 1, 2 (C1 also β = 0) from the summed correlators,
    in EnergyCorrelator's operation order; 0/0 is NaN as there."""
    norm2, norm3 = e1**2, e1**3
    for b, col in ((0, 0), (1, 1), (2, 2)):
        out[col] = e2[b] / e1 / e1  # c1
    for k, b in ((0, 1), (1, 2)):
        ecf3 = e3[3 * k]
        out[3 + k] = ecf3 * e1 / e2[b] / e2[b]  # c2
        out[5 + k] = ecf3 * e1 * e1 * e1 / e2[b] / e2[b] / e2[b]  # d2
        g12 = e2[b] / norm2
        out[7 + k] = e3[0] / norm3 / g12 ** (3.0 / b)  # d2 (α = 1, β)
        out[9 + k] = e3[3 * k + 1] / norm3 / g12  # m2
        out[11 + k] = e3[3 * k + 2] / norm3 / g12 / g12  # n2


@numba.njit(cache=True, nogil=True, error_model="numpy")
def groomed_observables(pt, d2, mom, node_kt2, children, groomed, out):
    """The groomed jet's mass, pT and energy-correlation ratios into ``out`` (columns 0, 1 and
    5-17), from soft drop's node ``groomed`` of a C/A tree and its constituents' pT and ΔR²."""
    g = mom[groomed]
    m2 = (g[3] + g[2]) * (g[3] - g[2]) - node_kt2[groomed]
    out[0] = math.sqrt(m2) if m2 >= 0.0 else -math.sqrt(-m2)
    out[1] = math.sqrt(node_kt2[groomed])
    kept = np.sort(leaves(children, groomed))
    correlators(pt[kept], d2[kept][:, kept], out[5:18])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def n_subjettiness(p, pt, rap, phi, kt_mom, kt_children, r0, out):
    """τ1-3 into ``out`` (columns 2-4) from the jet's kT tree: one-pass axes refined from the
    exclusive kT jets; τN = 0 for N or fewer particles, as Njettiness."""
    for n_axes in range(1, 4):
        if len(pt) <= n_axes:
            out[1 + n_axes] = 0.0
            continue
        seeds = exclusive_axes(kt_mom, kt_children, n_axes)
        axes = one_pass_axes(seeds, pt, rap, phi, p)
        out[1 + n_axes] = tau(axes, pt, rap, phi, r0)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def jet_observables(p, z_cut, beta, r0, out):
    """Every column of ``substructure.COLUMNS`` of one jet with n ≥ 1 constituents ``p``
    (n, 4) into ``out``."""
    kt2, rap, phi, d2 = kinematics(p)
    pt = np.sqrt(kt2)
    total = pt.sum()
    zlogz = 0.0
    for i in range(len(pt)):
        z = pt[i] / total
        if z > 0.0:
            zlogz += z * math.log(z)
    out[18] = zlogz
    mom, node_kt2, node_rap, node_phi, children = cluster(p, kt2, rap, phi, d2, False)
    groomed = soft_drop(node_kt2, node_rap, node_phi, children, z_cut, beta, r0)
    if groomed >= 0:
        groomed_observables(pt, d2, mom, node_kt2, children, groomed, out)
    kt_mom, _, _, _, kt_children = cluster(p, kt2, rap, phi, d2, True)
    n_subjettiness(p, pt, rap, phi, kt_mom, kt_children, r0, out)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def batch_observables(offsets, p, z_cut, beta, r0):
    """(jets, len(substructure.COLUMNS)) observables of a batch: jet j's constituents are
    ``p[offsets[j]:offsets[j + 1]]`` (px, py, pz, E); NaN where undefined (no constituents, no
    soft-drop result)."""
    n_jets = len(offsets) - 1
    out = np.full((n_jets, N_COLUMNS), np.nan)
    for j in range(n_jets):
        if offsets[j + 1] > offsets[j]:
            jet_observables(p[offsets[j] : offsets[j + 1]], z_cut, beta, r0, out[j])
    return out

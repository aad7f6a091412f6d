"""The compiled image kernel: preprocessing and pixelation fused in one pass per jet (numba).

One call handles every jet of a chunk: a loop over jets, and inside it a few passes over the
jet's constituents (coordinates, axis, rotation, reflection, binning), without temporaries the
size of the chunk. Its formulas are those of :mod:`jetimage.preprocess` (energyflow's), which
stays as the readable numpy reference; the tests check that the two agree.

The kernel releases the GIL (``nogil=True``), so Dask's threaded scheduler runs chunks on every
core at once.
"""

from __future__ import annotations

import math

import numba
import numpy as np

TWO_PI = 2.0 * math.pi

# integer codes of the string options of ImageSpec
COORDINATES = {"rapidity": 0, "pseudorapidity": 1}
PHI_REFS = {"hardest": 0, "axis": 1}
CENTERS = {"escheme": 0, "ptcentroid": 1, "leading": 2, "none": 3}
CHANNELS = {"pt": 0, "charged_pt": 1, "neutral_pt": 2, "counts": 3, "charged_counts": 4,
            "energy": 5}


@numba.njit(cache=True, nogil=True)
def _phi_fix(phi, ref):
    diff = phi - ref
    if diff > math.pi:
        return phi - TWO_PI
    if diff < -math.pi:
        return phi + TWO_PI
    return phi


@numba.njit(cache=True, nogil=True)
def _flip(pt, coord, n):
    """True if more pT lies at negative ``coord`` than at positive (energyflow's rule).

    Branch-free: the sign of a coordinate is data, and a branch on it mispredicts half the time.
    """
    above = 0.0
    below = 0.0
    for i in range(n):
        above += pt[i] * (coord[i] > 0)
        below += pt[i] * (coord[i] < 0)
    return above < below


@numba.njit(cache=True, nogil=True)
def _principal_axes(a, b, c):
    """Unit eigenvectors (small, large) of the symmetric matrix [[a, b], [b, c]].

    Degenerate matrices (b = 0 and a = c) keep the axes as they are, as LAPACK's ``eigh`` does.
    """
    if b == 0.0:
        if a > c:
            return 0.0, 1.0, 1.0, 0.0
        return 1.0, 0.0, 0.0, 1.0
    half = 0.5 * (a - c)
    large = 0.5 * (a + c) + math.sqrt(half * half + b * b)
    vx, vy = b, large - a  # eigenvector of the large eigenvalue
    if abs(vy) < abs(large - c):  # the better-conditioned form of the same vector
        vx, vy = large - c, b
    norm = math.sqrt(vx * vx + vy * vy)
    vx, vy = vx / norm, vy / norm
    return -vy, vx, vx, vy


@numba.njit(cache=True, nogil=True)
def images_kernel(y_in, phi_in, px, py, pz, energy, charge, offsets, n_y, n_phi, w_y,
                  w_phi, coordinate, phi_ref, center, rotate, reflect_y, reflect_phi,
                  centroid_shift, channels, normalize, images, outside):
    """Add into ``images`` (jets, channels, n_y, n_phi; zeros on entry) and count into
    ``outside`` (jets) the constituents that fall outside the window.

    ``y_in`` (y or η) and ``phi_in`` (``arctan2(py, px)``) are computed beforehand with numpy's
    vectorised (SIMD) functions, several times faster than scalar libm calls, and the very
    functions energyflow calls.
    """
    n_jets = len(offsets) - 1
    longest = 0
    for j in range(n_jets):
        longest = max(longest, offsets[j + 1] - offsets[j])
    pt = np.empty(longest)
    y = np.empty(longest)
    phi = np.empty(longest)
    row = np.empty(longest, dtype=np.int64)
    col = np.empty(longest, dtype=np.int64)
    pix_y = w_y / n_y
    pix_phi = w_phi / n_phi
    has_charge = len(charge) > 0

    for j in range(n_jets):
        start = offsets[j]
        n = offsets[j + 1] - start
        if n == 0:
            continue
        # φ unwrapped around the reference: the hardest constituent, or the jet axis
        hardest = 0
        sx = sy = sz = se = 0.0
        for i in range(n):
            k = start + i
            pt[i] = math.sqrt(px[k] * px[k] + py[k] * py[k])
            y[i] = y_in[k] if pt[i] > 0.0 else 0.0  # zero-pT entries (padding) sit at y = 0
            p = phi_in[k]
            phi[i] = p + TWO_PI if p < 0 else p
            if pt[i] > pt[hardest]:
                hardest = i
            sx += px[k]
            sy += py[k]
            sz += pz[k]
            se += energy[k]
        hardest_phi = phi[hardest]
        if phi_ref == 0:
            ref = hardest_phi
        else:
            ref = math.atan2(sy, sx) % TWO_PI
        for i in range(n):
            phi[i] = _phi_fix(phi[i], ref)
        if phi_ref == 1:
            hardest_phi = phi[hardest]

        # centring
        if center != 3:
            if center == 0:
                if coordinate == 0:
                    axis_y = math.atanh(sz / se)
                else:
                    axis_y = math.asinh(sz / math.sqrt(sx * sx + sy * sy))
                a = math.atan2(sy, sx)
                a = a + TWO_PI if a < 0 else a
                axis_phi = _phi_fix(a, hardest_phi)
            elif center == 1:
                total = wy = wphi = 0.0
                for i in range(n):
                    total += pt[i]
                    wy += pt[i] * y[i]
                    wphi += pt[i] * phi[i]
                axis_y = wy / total if total > 0 else 0.0
                axis_phi = wphi / total if total > 0 else 0.0
            else:
                axis_y = y[hardest]
                axis_phi = phi[hardest]
            for i in range(n):
                y[i] -= axis_y
                phi[i] -= axis_phi

        # principal-axis rotation: the large-eigenvalue axis of Σ pT (y, φ)⊗(y, φ) along φ
        if rotate:
            a = b = c = 0.0
            for i in range(n):
                a += pt[i] * y[i] * y[i]
                b += pt[i] * y[i] * phi[i]
                c += pt[i] * phi[i] * phi[i]
            ux, uy, vx, vy = _principal_axes(a, b, c)
            for i in range(n):
                new_y = y[i] * ux + phi[i] * uy
                phi[i] = y[i] * vx + phi[i] * vy
                y[i] = new_y
            if _flip(pt, phi, n):
                for i in range(n):
                    y[i] = -y[i]
                    phi[i] = -phi[i]

        if reflect_y and _flip(pt, y, n):
            for i in range(n):
                y[i] = -y[i]
        if reflect_phi and _flip(pt, phi, n):
            for i in range(n):
                phi[i] = -phi[i]

        # pixel grid: energyflow's (centroid pixel in the middle) or ±width/2 about the axis
        shift_y = shift_phi = 0.0
        if centroid_shift:
            total = wy = wphi = 0.0
            for i in range(n):
                if pt[i] > 0:
                    total += pt[i]
                    wy += pt[i] * y[i]
                    wphi += pt[i] * phi[i]
            if total > 0:
                shift_y = math.ceil(wy / total / pix_y - 0.5) - math.floor(n_y / 2)
                shift_phi = math.ceil(wphi / total / pix_phi - 0.5) - math.floor(n_phi / 2)

        # bin: first the pixel of each constituent and the in-window sums, then the weights
        sum_pt = 0.0
        sum_e = 0.0
        for i in range(n):
            row[i] = -1
            if pt[i] <= 0:
                continue
            if centroid_shift:
                iy = math.ceil(y[i] / pix_y - 0.5) - shift_y
                iphi = math.ceil(phi[i] / pix_phi - 0.5) - shift_phi
            else:
                iy = math.floor((y[i] + 0.5 * w_y) / pix_y)
                iphi = math.floor((phi[i] + 0.5 * w_phi) / pix_phi)
            if iy < 0 or iy >= n_y or iphi < 0 or iphi >= n_phi:
                outside[j] += 1
                continue
            row[i] = int(iy)
            col[i] = int(iphi)
            sum_pt += pt[i]
            sum_e += energy[start + i]
        scale_pt = 1.0 / sum_pt if normalize and sum_pt > 0 else 1.0
        scale_e = 1.0 / sum_e if normalize and sum_e > 0 else 1.0
        for i in range(n):
            if row[i] < 0:
                continue
            r, s = row[i], col[i]
            k = start + i
            charged = has_charge and charge[k] != 0
            for ch in range(len(channels)):
                code = channels[ch]
                if code == 0:
                    images[j, ch, r, s] += pt[i] * scale_pt
                elif code == 1:
                    if charged:
                        images[j, ch, r, s] += pt[i] * scale_pt
                elif code == 2:
                    if not charged:
                        images[j, ch, r, s] += pt[i] * scale_pt
                elif code == 3:
                    images[j, ch, r, s] += 1.0
                elif code == 4:
                    if charged:
                        images[j, ch, r, s] += 1.0
                else:
                    images[j, ch, r, s] += energy[k] * scale_e

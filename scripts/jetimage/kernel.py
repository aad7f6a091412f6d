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


@numba.njit(cache=True, nogil=True, inline="always")
def _side_sums(sums, w, y, phi):
    """Add a constituent of pT ``w`` at (y, φ) to (pT at y > 0, at y < 0, at φ > 0, at φ < 0,
    Σ pT y, Σ pT φ). Branch-free: a coordinate's sign is data, a branch on it mispredicts."""
    return (sums[0] + w * (y > 0), sums[1] + w * (y < 0), sums[2] + w * (phi > 0),
            sums[3] + w * (phi < 0), sums[4] + w * y, sums[5] + w * phi)


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


@numba.njit(cache=True, nogil=True, error_model='numpy', boundscheck=False)
def images_kernel(y_in, phi_in, px, py, pz, energy, charge, offsets, n_y, n_phi, w_y,
                  w_phi, coordinate, phi_ref, center, rotate, reflect_y, reflect_phi,
                  centroid_shift, channels, normalize, images, outside):
    """Fill ``images`` (jets, channels, n_y, n_phi; any content on entry) and count into
    ``outside`` (jets; zeros on entry) the constituents that fall outside the window.

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
        images[j] = 0.0  # zeroed here, while the image is about to be written (cache-warm)
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
        if phi_ref == 0:
            ref = phi[hardest]
        else:
            ref = math.atan2(sy, sx) % TWO_PI
        hardest_phi = _phi_fix(phi[hardest], ref)

        # centring axis (the pT centroid needs one pass over the unwrapped φ first)
        unwrapped = False
        axis_y = axis_phi = 0.0
        if center == 0:
            if coordinate == 0:
                axis_y = math.atanh(sz / se)
            else:
                axis_y = math.asinh(sz / math.sqrt(sx * sx + sy * sy))
            a = math.atan2(sy, sx)
            axis_phi = _phi_fix(a + TWO_PI if a < 0 else a, hardest_phi)
        elif center == 1:
            total = wy = wphi = 0.0
            for i in range(n):
                phi[i] = _phi_fix(phi[i], ref)
                total += pt[i]
                wy += pt[i] * y[i]
                wphi += pt[i] * phi[i]
            unwrapped = True
            if total > 0:
                axis_y = wy / total
                axis_phi = wphi / total
        elif center == 2:
            axis_y = y[hardest]
            axis_phi = hardest_phi

        # one pass: unwrap, centre, and the sums that rotation, reflection and the centroid
        # pixel need (pT on each side of each axis, pT-weighted coordinates)
        a = b = c = 0.0
        sums = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for i in range(n):
            if not unwrapped:
                phi[i] = _phi_fix(phi[i], ref)
            y[i] -= axis_y
            phi[i] -= axis_phi
            w = pt[i]
            if rotate:
                a += w * y[i] * y[i]
                b += w * y[i] * phi[i]
                c += w * phi[i] * phi[i]
            else:
                sums = _side_sums(sums, pt[i], y[i], phi[i])

        # principal-axis rotation: the large-eigenvalue axis of Σ pT (y, φ)⊗(y, φ) along φ,
        # turned so that more pT lies at positive φ
        if rotate:
            ux, uy, vx, vy = _principal_axes(a, b, c)
            for i in range(n):
                new_y = y[i] * ux + phi[i] * uy
                phi[i] = y[i] * vx + phi[i] * vy
                y[i] = new_y
                sums = _side_sums(sums, pt[i], y[i], phi[i])

        # reflections are sign flips, applied while binning; a flip swaps the side sums
        y_up, y_down, phi_up, phi_down, wy, wphi = sums
        sign_y = sign_phi = 1.0
        if rotate and phi_up < phi_down:
            sign_y = sign_phi = -1.0
            y_up, y_down = y_down, y_up
            phi_up, phi_down = phi_down, phi_up
        if reflect_y and y_up < y_down:
            sign_y = -sign_y
        if reflect_phi and phi_up < phi_down:
            sign_phi = -sign_phi

        # pixel grid: energyflow's (centroid pixel in the middle) or ±width/2 about the axis
        shift_y = shift_phi = 0.0
        if centroid_shift:
            total = 0.0
            for i in range(n):
                total += pt[i]
            if total > 0:
                shift_y = math.ceil(sign_y * wy / total / pix_y - 0.5) - math.floor(n_y / 2)
                shift_phi = math.ceil(sign_phi * wphi / total / pix_phi - 0.5) \
                    - math.floor(n_phi / 2)

        # bin: first the pixel of each constituent and the in-window sums, then the weights
        sum_pt = 0.0
        sum_e = 0.0
        for i in range(n):
            row[i] = -1
            if pt[i] <= 0:
                continue
            yi = sign_y * y[i]
            phii = sign_phi * phi[i]
            if centroid_shift:
                iy = math.ceil(yi / pix_y - 0.5) - shift_y
                iphi = math.ceil(phii / pix_phi - 0.5) - shift_phi
            else:
                iy = math.floor((yi + 0.5 * w_y) / pix_y)
                iphi = math.floor((phii + 0.5 * w_phi) / pix_phi)
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

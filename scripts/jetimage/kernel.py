"""The compiled image kernel: preprocessing and pixelation fused in one call per chunk (numba).

One call handles every jet of a chunk: a loop over jets, and inside it a few short passes over
the jet's constituents (coordinates, axis, rotation, reflection, binning), without temporaries
the size of the chunk. Its formulas are those of :mod:`jetimage.preprocess` (energyflow's),
which stays as the readable numpy reference; the tests check that the two agree.

Each pass is written so that LLVM turns it into a SIMD loop: no branch on the data (selects
instead of ``if``), sums that may be reassociated (``fastmath={"reassoc"}``), and indices that
count from 0 within per-jet views (docs/benchmarks.md). Reassociation changes sums in their
last bits only; numpy's pairwise sums in energyflow differ from in-order sums by as much.

The kernel releases the GIL (``nogil=True``), so Dask's threaded scheduler runs chunks on every
core at once.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from jetimage import pixelate

TWO_PI = 2.0 * math.pi
REASSOCIATE = {"reassoc"}  # lets LLVM vectorise the per-jet sums

# integer codes of the string options of ImageSpec
COORDINATES = {"rapidity": 0, "pseudorapidity": 1}
PHI_REFS = {"hardest": 0, "axis": 1}
CENTERS = {"escheme": 0, "ptcentroid": 1, "leading": 2, "none": 3}
CHANNELS = {name: code for code, name in enumerate(pixelate.CHANNELS)}


@numba.njit(cache=True, nogil=True, inline="always")
def _phi_fix(phi, ref):
    """φ moved by 2π to within π of ``ref`` (one select, so loops calling it vectorise)."""
    shift = phi - ref
    return phi - TWO_PI if shift > math.pi else (phi + TWO_PI if shift < -math.pi else phi)


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


@numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False, fastmath=REASSOCIATE)
def images_kernel(
    y_in,
    phi_in,
    px,
    py,
    pz,
    energy,
    charge,
    offsets,
    n_y,
    n_phi,
    w_y,
    w_phi,
    coordinate,
    phi_ref,
    center,
    rotate,
    reflect_y,
    reflect_phi,
    centroid_shift,
    channels,
    normalize,
    images,
    outside,
    outside_pt,
):
    """Fill ``images`` (jets, channels, n_y, n_phi; float32, C-contiguous, any content on
    entry), ``outside`` (jets): how many constituents of each jet fall outside the window, and
    ``outside_pt`` (jets, float64): their summed pT.

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
    pixel = np.empty(longest, dtype=np.int64)  # flat pixel index, -1 outside the window
    pix_y = w_y / n_y
    pix_phi = w_phi / n_phi
    has_charge = len(charge) > 0
    n_pixels = n_y * n_phi
    n_channels = len(channels)
    flat_images = images.reshape(n_jets, n_channels * n_pixels)

    # Indices below count from 0 within per-jet (per-channel) views: an index that LLVM
    # cannot prove non-negative gets numba's wraparound select, which turns SIMD loads and
    # stores into gathers and scatters, several times slower.
    for j in range(n_jets):
        image = flat_images[j]
        start, stop = offsets[j], offsets[j + 1]
        n = stop - start
        outside[j] = 0
        outside_pt[j] = 0.0
        if n == 0:
            image[:] = 0.0
            continue
        jet_px, jet_py, jet_pz = px[start:stop], py[start:stop], pz[start:stop]
        jet_e, jet_y, jet_phi = energy[start:stop], y_in[start:stop], phi_in[start:stop]
        jet_charge = charge[start:stop] if has_charge else charge

        # pT, y (zero-pT entries, padding, sit at y = 0), φ in [0, 2π), and the jet's sums
        sx = sy = sz = se = sum_pt = 0.0
        for i in range(n):
            x, v, f = jet_px[i], jet_py[i], jet_phi[i]  # locals: stores into the scratch
            p = math.sqrt(x * x + v * v)  # arrays would force reloads
            pt[i] = p
            y[i] = jet_y[i] if p > 0.0 else 0.0
            phi[i] = f + TWO_PI if f < 0 else f
            sx += x
            sy += v
            sz += jet_pz[i]
            se += jet_e[i]
            sum_pt += p
        hardest = 0  # the first of the largest pT, as numpy's argmax
        for i in range(1, n):
            if pt[i] > pt[hardest]:
                hardest = i

        # φ unwrapped around the reference: the hardest constituent, or the jet axis
        ref = phi[hardest] if phi_ref == 0 else math.atan2(sy, sx) % TWO_PI
        for i in range(n):
            phi[i] = _phi_fix(phi[i], ref)
        hardest_phi = phi[hardest]

        # centring axis
        axis_y = axis_phi = 0.0
        if center == 0:  # E-scheme
            if coordinate == 0:
                axis_y = math.atanh(sz / se)
            else:
                axis_y = math.asinh(sz / math.sqrt(sx * sx + sy * sy))
            a = math.atan2(sy, sx)
            axis_phi = _phi_fix(a + TWO_PI if a < 0 else a, hardest_phi)
        elif center == 1 and sum_pt > 0:  # pT centroid
            wy = wphi = 0.0
            for i in range(n):
                wy += pt[i] * y[i]
                wphi += pt[i] * phi[i]
            axis_y = wy / sum_pt
            axis_phi = wphi / sum_pt
        elif center == 2:  # leading constituent
            axis_y = y[hardest]
            axis_phi = hardest_phi

        # centre, and the pT-weighted second moments that the rotation needs
        a = b = c = 0.0
        for i in range(n):
            w, u, v = pt[i], y[i] - axis_y, phi[i] - axis_phi
            y[i] = u
            phi[i] = v
            a += w * u * u
            b += w * u * v
            c += w * v * v

        # principal-axis rotation: the large-eigenvalue axis of Σ pT (y, φ)⊗(y, φ) along φ
        if rotate:
            ux, uy, vx, vy = _principal_axes(a, b, c)
            for i in range(n):
                u, v = y[i], phi[i]
                y[i] = u * ux + v * uy
                phi[i] = u * vx + v * vy

        # pT on each side of each axis (reflections) and pT-weighted coordinates (centroid pixel)
        y_up = y_down = phi_up = phi_down = wy = wphi = 0.0
        for i in range(n):
            w, u, v = pt[i], y[i], phi[i]
            y_up += w if u > 0 else 0.0
            y_down += w if u < 0 else 0.0
            phi_up += w if v > 0 else 0.0
            phi_down += w if v < 0 else 0.0
            wy += w * u
            wphi += w * v

        # the rotation turns more pT to positive φ; reflections are sign flips, applied while
        # binning; a flip swaps the side sums
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
        if centroid_shift and sum_pt > 0:
            shift_y = math.ceil(sign_y * wy / sum_pt / pix_y - 0.5) - math.floor(n_y / 2)
            shift_phi = math.ceil(sign_phi * wphi / sum_pt / pix_phi - 0.5) - math.floor(n_phi / 2)

        # bin: the pixel of each constituent, the count outside and the in-window sums
        in_pt = in_e = out_pt = 0.0
        n_outside = 0
        for i in range(n):
            w, u, v = pt[i], sign_y * y[i], sign_phi * phi[i]
            if centroid_shift:
                iy = math.ceil(u / pix_y - 0.5) - shift_y
                iphi = math.ceil(v / pix_phi - 0.5) - shift_phi
            else:
                iy = math.floor((u + 0.5 * w_y) / pix_y)
                iphi = math.floor((v + 0.5 * w_phi) / pix_phi)
            positive = w > 0
            inside = positive and iy >= 0 and iy < n_y and iphi >= 0 and iphi < n_phi
            pixel[i] = int(iy * n_phi + iphi) if inside else -1
            n_outside += positive and not inside
            out_pt += w if positive and not inside else 0.0
            in_pt += w if inside else 0.0
            in_e += jet_e[i] if inside else 0.0
        outside[j] = n_outside
        outside_pt[j] = out_pt

        # scatter the weights into the image, zeroed first (memset: faster than any store
        # loop, and it leaves the image in L1 cache for the scatter)
        for q in range(n_channels * n_pixels):
            image[q] = 0.0
        scale_pt = 1.0 / in_pt if normalize and in_pt > 0 else 1.0
        scale_e = 1.0 / in_e if normalize and in_e > 0 else 1.0
        for ch in range(n_channels):
            code = channels[ch]
            channel = image[ch * n_pixels : (ch + 1) * n_pixels]
            for i in range(n):
                q = pixel[i]
                if q < 0:
                    continue
                charged = has_charge and jet_charge[i] != 0
                if code == 0:
                    channel[q] += pt[i] * scale_pt
                elif code == 1:
                    if charged:
                        channel[q] += pt[i] * scale_pt
                elif code == 2:
                    if not charged:
                        channel[q] += pt[i] * scale_pt
                elif code == 3:
                    channel[q] += 1.0
                elif code == 4:
                    if charged:
                        channel[q] += 1.0
                else:
                    channel[q] += jet_e[i] * scale_e

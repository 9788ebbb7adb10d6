"""Compiled CPU kernels (numba), parallel over the batch.

All kernels take masks as C-contiguous uint8 arrays of shape (N, D, H, W) (``D = 1`` for 2D
images) and write into preallocated outputs. Two border values parametrise every kernel:

* ``edge``: the distance value of the pixels just outside the array along H and W: 0 for
  ``border="background"``, ``INF`` for ``border="open"``;
* ``edge_z``: the same along D: ``edge`` for volumes, ``INF`` for 2D images (no depth neighbours).

The distance transform is the exact two-pass raster scan for the 3**n - 1 neighbourhood with unit
weights (Rosenfeld & Pfaltz), which yields the Chebyshev distance in Theta(V).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._inputs import NO_BACKGROUND

INF = np.int32(NO_BACKGROUND)


@njit(cache=True, nogil=True)
def _min3_into(src, t, edge):
    """t[x] = min(t[x], src[x-1], src[x], src[x+1]) with ``edge`` outside the row."""
    w = t.shape[0]
    if w == 1:
        t[0] = min(t[0], min(src[0], edge))
        return
    t[0] = min(t[0], min(edge, min(src[0], src[1])))
    for x in range(1, w - 1):
        t[x] = min(t[x], min(src[x - 1], min(src[x], src[x + 1])))
    t[w - 1] = min(t[w - 1], min(src[w - 2], min(src[w - 1], edge)))


@njit(cache=True, nogil=True)
def _fill_min(t, value):
    for x in range(t.shape[0]):
        t[x] = min(t[x], value)


@njit(cache=True, nogil=True)
def _neighbour_rows_min(out, t, z, y, zn, yn, edge, edge_z):
    """t = min over the already-final neighbours of row (z, y) in plane zn and row (z, yn)."""
    d, h, _ = out.shape
    if 0 <= zn < d:
        t[:] = INF
        for yy in range(y - 1, y + 2):
            if 0 <= yy < h:
                _min3_into(out[zn, yy], t, edge)
            else:
                _fill_min(t, edge)
    else:
        t[:] = edge_z
    if 0 <= yn < h:
        _min3_into(out[z, yn], t, edge)
    else:
        _fill_min(t, edge)


@njit(cache=True, nogil=True)
def dt_image(m, out, t, edge, edge_z):
    """Chebyshev distance transform of one (D, H, W) uint8 mask into ``out`` (int32).

    ``t`` is a scratch row of length W. Returns the number of background pixels. Without any
    background pixel and with open borders, every entry is set to ``INF`` (= NO_BACKGROUND).
    """
    d, h, w = m.shape
    nbg = 0
    for z in range(d):
        for y in range(h):
            _neighbour_rows_min(out, t, z, y, z - 1, y - 1, edge, edge_z)
            row_m = m[z, y]
            row_o = out[z, y]
            left = edge
            for x in range(w):
                if row_m[x]:
                    v = min(t[x], left) + 1
                else:
                    v = 0
                    nbg += 1
                row_o[x] = v
                left = v
    if nbg == 0 and edge == INF and edge_z == INF:
        out[:] = INF
        return 0
    for z in range(d - 1, -1, -1):
        for y in range(h - 1, -1, -1):
            _neighbour_rows_min(out, t, z, y, z + 1, y + 1, edge, edge_z)
            row_o = out[z, y]
            right = edge
            for x in range(w - 1, -1, -1):
                v = row_o[x]
                if v != 0:
                    v = min(v, min(t[x], right) + 1)
                    row_o[x] = v
                right = v
    return nbg


@njit(cache=True, parallel=True)
def dt_batch(m, out, edge, edge_z):
    """Distance transform of every mask of an (N, D, H, W) batch, in parallel over N."""
    for n in prange(m.shape[0]):
        t = np.empty(m.shape[3], np.int32)
        dt_image(m[n], out[n], t, edge, edge_z)


@njit(cache=True, nogil=True)
def _image_size(d):
    """2 * max distance as float32, +inf for NO_BACKGROUND."""
    best = 0
    flat = d.reshape(d.size)
    for i in range(flat.shape[0]):
        if flat[i] > best:
            best = flat[i]
    if best >= INF:
        return np.float32(np.inf)
    return np.float32(2 * best)


@njit(cache=True, parallel=True)
def size_batch(m, sizes, edge, edge_z):
    """object_size of every mask of an (N, D, H, W) batch into ``sizes`` (N,) float32."""
    n_img, d, h, w = m.shape
    for n in prange(n_img):
        t = np.empty(w, np.int32)
        dist = np.empty((d, h, w), np.int32)
        dt_image(m[n], dist, t, edge, edge_z)
        sizes[n] = _image_size(dist)


@njit(cache=True, nogil=True)
def _box(p, z0, z1, y0, y1, x0, x1, is3d):
    """Sum over the inclusive box from the integral image ``p`` of shape (D+1, H+1, W+1)."""
    if is3d:
        return (p[z1 + 1, y1 + 1, x1 + 1] - p[z0, y1 + 1, x1 + 1] - p[z1 + 1, y0, x1 + 1]
                - p[z1 + 1, y1 + 1, x0] + p[z0, y0, x1 + 1] + p[z0, y1 + 1, x0]
                + p[z1 + 1, y0, x0] - p[z0, y0, x0])
    return p[1, y1 + 1, x1 + 1] - p[1, y0, x1 + 1] - p[1, y1 + 1, x0] + p[1, y0, x0]


@njit(cache=True, nogil=True)
def _integral_images(m):
    """Integral images of the background indicator and of the background pixels' linear index."""
    d, h, w = m.shape
    cnt = np.zeros((d + 1, h + 1, w + 1), np.int32)
    idx = np.zeros((d + 1, h + 1, w + 1), np.int64)
    for z in range(d):
        for y in range(h):
            rc = 0
            ri = 0
            for x in range(w):
                if not m[z, y, x]:
                    rc += 1
                    ri += (z * h + y) * w + x
                cnt[z + 1, y + 1, x + 1] = cnt[z + 1, y, x + 1] + rc
                idx[z + 1, y + 1, x + 1] = idx[z + 1, y, x + 1] + ri
        for y in range(1, h + 1):
            for x in range(1, w + 1):
                cnt[z + 1, y, x] += cnt[z, y, x]
                idx[z + 1, y, x] += idx[z, y, x]
    return cnt, idx


@njit(cache=True, nogil=True)
def _grow_background_flips(m, flat_out, big_m, is3d, open_border):
    """Sizes after turning each background pixel into foreground (only the ones that grow).

    The new maximum distance is >= k > M exactly when a window (cube) of radius k - 1 holds a
    single background pixel, which is then the flipped one; k runs up from M + 1 until no window
    holds exactly one background pixel (window counts only grow with k).
    """
    d, h, w = m.shape
    cnt, idx = _integral_images(m)
    k = big_m + 1
    while k <= d + h + w + 2:
        r = k - 1
        rz = r if is3d else 0
        if open_border:
            zc0, zc1, yc0, yc1, xc0, xc1 = 0, d - 1, 0, h - 1, 0, w - 1
        else:
            zc0, zc1, yc0, yc1, xc0, xc1 = rz, d - 1 - rz, r, h - 1 - r, r, w - 1 - r
            if zc0 > zc1 or yc0 > yc1 or xc0 > xc1:
                break
        found = False
        for z in range(zc0, zc1 + 1):
            z0 = max(z - rz, 0)
            z1 = min(z + rz, d - 1)
            for y in range(yc0, yc1 + 1):
                y0 = max(y - r, 0)
                y1 = min(y + r, h - 1)
                for x in range(xc0, xc1 + 1):
                    x0 = max(x - r, 0)
                    x1 = min(x + r, w - 1)
                    if _box(cnt, z0, z1, y0, y1, x0, x1, is3d) == 1:
                        flat_out[_box(idx, z0, z1, y0, y1, x0, x1, is3d)] = 2 * k
                        found = True
        if not found:
            break
        k += 1


@njit(cache=True, nogil=True)
def _box_radius(lo, hi, k, z, y, x):
    """Chebyshev radius, seen from (z, y, x), of the bounding box of level set k."""
    return max(max(z - lo[k, 0], hi[k, 0] - z),
               max(max(y - lo[k, 1], hi[k, 1] - y), max(x - lo[k, 2], hi[k, 2] - x)))


@njit(cache=True, nogil=True)
def _shrink_foreground_flips(dist, flat_out, big_m):
    """Sizes after turning each foreground pixel i into background.

    The new maximum is the largest k whose level set S_k = {j: d_j >= k} is not inside the cube of
    radius k - 1 around i; a set lies in a cube iff its bounding box does, and containment only
    becomes easier as k grows, so a binary search over k on the level-set boxes answers each pixel.
    """
    d, h, w = dist.shape
    lo = np.full((big_m + 2, 3), np.int64(1) << 40)
    hi = np.full((big_m + 2, 3), np.int64(-1))
    for z in range(d):
        for y in range(h):
            for x in range(w):
                v = dist[z, y, x]
                if v > 0:
                    lo[v, 0] = min(lo[v, 0], z)
                    hi[v, 0] = max(hi[v, 0], z)
                    lo[v, 1] = min(lo[v, 1], y)
                    hi[v, 1] = max(hi[v, 1], y)
                    lo[v, 2] = min(lo[v, 2], x)
                    hi[v, 2] = max(hi[v, 2], x)
    for v in range(big_m - 1, 0, -1):
        for a in range(3):
            lo[v, a] = min(lo[v, a], lo[v + 1, a])
            hi[v, a] = max(hi[v, a], hi[v + 1, a])
    i = 0
    for z in range(d):
        for y in range(h):
            for x in range(w):
                # contained(k): the cube of radius k - 1 around (z, y, x) holds S_k's box.
                if dist[z, y, x] > 0 and _box_radius(lo, hi, big_m, z, y, x) <= big_m - 1:
                    lo_k = 1
                    hi_k = big_m  # contained(M) holds (checked above)
                    while lo_k < hi_k:
                        k = (lo_k + hi_k) // 2
                        if _box_radius(lo, hi, k, z, y, x) <= k - 1:
                            hi_k = k
                        else:
                            lo_k = k + 1
                    flat_out[i] = 2 * (lo_k - 1)
                i += 1


@njit(cache=True, nogil=True)
def flip_image(m, dist, out, t, edge, edge_z, is3d):
    """Flip sizes of one (D, H, W) mask into ``out`` (float32); returns the mask's own size."""
    d, h, w = m.shape
    open_border = edge == INF
    flat_out = out.reshape(out.size)
    nbg = dt_image(m, dist, t, edge, edge_z)
    if nbg == 0 and open_border:
        # All foreground: flipping i makes it the only background pixel; the new maximum is
        # the Chebyshev distance from i to the farthest pixel.
        for z in range(d):
            for y in range(h):
                for x in range(w):
                    r = max(max(y, h - 1 - y), max(x, w - 1 - x))
                    if is3d:
                        r = max(r, max(z, d - 1 - z))
                    out[z, y, x] = 2 * r
        return np.float32(np.inf)
    big_m = 0
    flat_d = dist.reshape(dist.size)
    for i in range(flat_d.shape[0]):
        big_m = max(big_m, flat_d[i])
    flat_out[:] = 2 * big_m
    if big_m > 0:
        _shrink_foreground_flips(dist, flat_out, big_m)
    if nbg == 1 and open_border:
        for i in range(flat_d.shape[0]):
            if flat_d[i] == 0:
                flat_out[i] = np.inf
    elif nbg > 0:
        _grow_background_flips(m, flat_out, big_m, is3d, open_border)
    return np.float32(2 * big_m)


@njit(cache=True, parallel=True)
def flip_batch(m, out, sizes, edge, edge_z, is3d):
    """flip_sizes (into ``out``) and object sizes (into ``sizes``) of an (N, D, H, W) batch."""
    n_img, d, h, w = m.shape
    for n in prange(n_img):
        t = np.empty(w, np.int32)
        dist = np.empty((d, h, w), np.int32)
        sizes[n] = flip_image(m[n], dist, out[n], t, edge, edge_z, is3d)

"""Compiled CPU kernels (numba, nogil), run in parallel over the batch by a thread pool.

All kernels take masks as C-contiguous uint8 arrays of shape (N, D, H, W) (``D = 1`` for 2D
images) and write into preallocated outputs. Two border values parametrise every kernel:

* ``edge``: the distance value of the pixels just outside the array along H and W: 0 for
  ``border="background"``, ``INF`` for ``border="open"``;
* ``edge_z``: the same along D: ``edge`` for volumes, ``INF`` for 2D images (no depth neighbours).

The distance transform is the exact two-pass raster scan for the 3**n - 1 neighbourhood with unit
weights (Rosenfeld & Pfaltz), which yields the Chebyshev distance in Theta(V). Each row first
takes, in vectorisable loops, the minimum over its neighbours in the rows (and, for volumes, the
plane) already done, and only the in-row neighbour is left to a short sequential scan.
Background pixels are zeroed by a multiply, not a branch (random masks would mispredict).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

from ._inputs import NO_BACKGROUND

INF = np.int32(NO_BACKGROUND)
ONE = np.int32(1)


@njit(cache=True, nogil=True)
def _scan_left(t, row, row_min3, edge):
    """Forward in-row step row[x] = min(t[x], row[x-1] + 1), left to right; also writes the
    finished row's horizontal 3-minimum into ``row_min3`` from registers (free: the scan is
    latency-bound)."""
    w = t.shape[0]
    left = min(t[0], edge + ONE)
    row[0] = left
    a = edge
    b = left
    for x in range(1, w):
        left = min(t[x], left + ONE)
        row[x] = left
        row_min3[x - 1] = min(min(a, b), left)
        a = b
        b = left
    row_min3[w - 1] = min(min(a, b), edge)


@njit(cache=True, nogil=True)
def _scan_right(t, row, row_min3, edge):
    """Backward in-row step row[x] = min(t[x], row[x+1] + 1), right to left, with the 3-minimum."""
    w = t.shape[0]
    right = min(t[w - 1], edge + ONE)
    row[w - 1] = right
    a = edge
    b = right
    for xi in range(1, w):
        x = w - 1 - xi
        right = min(t[x], right + ONE)
        row[x] = right
        row_min3[x + 1] = min(min(a, b), right)
        a = b
        b = right
    row_min3[0] = min(min(a, b), edge)


@njit(cache=True, nogil=True)
def _dt_plane(m, o, edge):
    """2D transform of one (H, W) plane, one loop per row and pass.

    The scan along a row, ``v = min(t[x], v + 1)``, is bound by its loop-carried latency; the
    spare issue slots compute, from the last three finished values (kept in registers), the
    next row's ``t`` (1 + the minimum of its three neighbours in this row, zeroed on background
    in the forward pass, capped by the forward value in the backward pass).
    """
    h, w = m.shape
    t = np.empty(w, np.int32)
    tn = np.empty(w, np.int32)
    mr = m[0]
    for x in range(w):
        t[x] = (edge + ONE) * np.int32(mr[x] != 0)
    for y in range(h):
        row = o[y]
        mn = m[y + 1] if y < h - 1 else m[y]  # the last row's "next" is never used
        left = min(t[0], edge + ONE)
        row[0] = left
        a = edge
        b = left
        for x in range(1, w):
            left = min(t[x], left + ONE)
            row[x] = left
            tn[x - 1] = (min(min(a, b), left) + ONE) * np.int32(mn[x - 1] != 0)
            a = b
            b = left
        tn[w - 1] = (min(min(a, b), edge) + ONE) * np.int32(mn[w - 1] != 0)
        t, tn = tn, t
    last = o[h - 1]
    for x in range(w):
        t[x] = min(edge + ONE, last[x])
    for y in range(h - 1, -1, -1):
        row = o[y]
        fwd = o[y - 1] if y > 0 else o[y]  # the row above, still holding forward values
        right = min(t[w - 1], edge + ONE)
        row[w - 1] = right
        a = edge
        b = right
        for xi in range(1, w):
            x = w - 1 - xi
            right = min(t[x], right + ONE)
            row[x] = right
            tn[x + 1] = min(min(min(a, b), right) + ONE, fwd[x + 1])
            a = b
            b = right
        tn[0] = min(min(min(a, b), edge) + ONE, fwd[0])
        t, tn = tn, t


@njit(cache=True, nogil=True)
def dt_image(m, out, edge, edge_z):
    """Chebyshev distance transform of one (D, H, W) uint8 mask into ``out`` (int32).

    Images (D = 1 without depth neighbours) take the plane kernel. Volumes: each row first
    gathers, in one vectorisable loop, the minimum over its already-final neighbours, plus one,
    zeroed on background; a short sequential scan ``v = min(t[x], v + 1)`` then adds the in-row
    neighbour. The neighbours come from the horizontal 3-minima of finished rows, each taken once
    right after its row is done (this plane's rows and the plane before's).
    Without any background pixel and with open borders every entry is set to ``INF``
    (= NO_BACKGROUND): the forward scan reaches the last pixel from any background pixel, so
    that pixel's value tells whether there is one.
    """
    d, h, w = m.shape
    if d == 1 and edge_z >= INF:
        _dt_plane(m[0], out[0], edge)
        if edge >= INF and out[0, h - 1, w - 1] >= INF:
            out[:] = INF
        return
    t = np.empty(w, np.int32)
    # Horizontal 3-minima of finished rows: of this plane (cur) and of the plane before (prev).
    cur = np.empty((h, w), np.int32)
    prev = np.empty((h, w), np.int32)
    edge_row = np.full(w, edge, np.int32)
    edge_z_row = np.full(w, edge_z, np.int32)
    for z in range(d):
        for y in range(h):
            a = cur[y - 1] if y > 0 else edge_row
            if z > 0:
                p0 = prev[y - 1] if y > 0 else edge_row
                p1 = prev[y]
                p2 = prev[y + 1] if y < h - 1 else edge_row
            else:
                p0 = edge_z_row
                p1 = edge_z_row
                p2 = edge_z_row
            row_m = m[z, y]
            for x in range(w):
                t[x] = (min(min(a[x], p0[x]), min(p1[x], p2[x])) + ONE) * np.int32(row_m[x] != 0)
            _scan_left(t, out[z, y], cur[y], edge)
        cur, prev = prev, cur
    if edge >= INF and edge_z >= INF and out[d - 1, h - 1, w - 1] >= INF:
        out[:] = INF
        return
    for z in range(d - 1, -1, -1):
        for y in range(h - 1, -1, -1):
            a = cur[y + 1] if y < h - 1 else edge_row
            if z < d - 1:
                p0 = prev[y - 1] if y > 0 else edge_row
                p1 = prev[y]
                p2 = prev[y + 1] if y < h - 1 else edge_row
            else:
                p0 = edge_z_row
                p1 = edge_z_row
                p2 = edge_z_row
            row_o = out[z, y]
            for x in range(w):
                t[x] = min(min(min(a[x], p0[x]), min(p1[x], p2[x])) + ONE, row_o[x])
            _scan_right(t, row_o, cur[y], edge)
        cur, prev = prev, cur


@njit(cache=True, nogil=True)
def dt_batch_serial(m, out, edge, edge_z):
    for n in range(m.shape[0]):
        dt_image(m[n], out[n], edge, edge_z)


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


@njit(cache=True, nogil=True)
def _size_item(m, edge, edge_z):
    dist = np.empty(m.shape, np.int32)
    dt_image(m, dist, edge, edge_z)
    return _image_size(dist)


@njit(cache=True, nogil=True)
def size_batch_serial(m, sizes, edge, edge_z):
    for n in range(m.shape[0]):
        sizes[n] = _size_item(m[n], edge, edge_z)


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
def _fill_level_bounds(maxes, lo, hi, axis):
    """For each level k: lo/hi[k, axis] = first/last index i with maxes[i] >= k."""
    for i in range(maxes.shape[0]):
        for k in range(1, maxes[i] + 1):
            if hi[k, axis] < 0:
                lo[k, axis] = i
            hi[k, axis] = i


@njit(cache=True, nogil=True)
def _level_boxes(dist, big_m):
    """Bounding boxes of the level sets S_k = {j: d_j >= k}, k = 1..M, as lo/hi (M + 2, 3).

    From the per-plane, per-row and per-column maxima (vectorisable reductions), so no
    read-modify-write on data-dependent addresses; levels above M stay empty (lo huge, hi -1).
    """
    d, h, w = dist.shape
    col = np.zeros(w, np.int32)
    rowmax = np.zeros(h, np.int32)
    planemax = np.zeros(d, np.int32)
    for z in range(d):
        for y in range(h):
            row = dist[z, y]
            r = np.int32(0)
            for x in range(w):
                r = max(r, row[x])
                col[x] = max(col[x], row[x])
            rowmax[y] = max(rowmax[y], r)
            planemax[z] = max(planemax[z], r)
    lo = np.full((big_m + 2, 3), np.int64(1) << 40)
    hi = np.full((big_m + 2, 3), np.int64(-1))
    _fill_level_bounds(planemax, lo, hi, 0)
    _fill_level_bounds(rowmax, lo, hi, 1)
    _fill_level_bounds(col, lo, hi, 2)
    return lo, hi


@njit(cache=True, nogil=True)
def _shrink_foreground_flips(dist, flat_out, big_m):
    """Sizes after turning each foreground pixel i into background.

    The new maximum is the largest k whose level set S_k = {j: d_j >= k} is not inside the cube of
    radius k - 1 around i; a set lies in a cube iff its bounding box does, and containment only
    becomes easier as k grows, so a binary search over k on the level-set boxes answers each pixel.
    """
    d, h, w = dist.shape
    lo, hi = _level_boxes(dist, big_m)
    # Only pixels whose cube of radius M - 1 holds the box of S_M can change: a sub-box of rows
    # and columns, found once; elsewhere the size stays 2M.
    r = big_m - 1
    for z in range(max(0, hi[big_m, 0] - r), min(d - 1, lo[big_m, 0] + r) + 1):
        for y in range(max(0, hi[big_m, 1] - r), min(h - 1, lo[big_m, 1] + r) + 1):
            for x in range(max(0, hi[big_m, 2] - r), min(w - 1, lo[big_m, 2] + r) + 1):
                if dist[z, y, x] > 0:
                    # contained(k): the cube of radius k - 1 around (z, y, x) holds S_k's box;
                    # it holds at k = M here and only gets easier as k grows.
                    lo_k = 1
                    hi_k = big_m
                    while lo_k < hi_k:
                        k = (lo_k + hi_k) // 2
                        if _box_radius(lo, hi, k, z, y, x) <= k - 1:
                            hi_k = k
                        else:
                            lo_k = k + 1
                    flat_out[(z * h + y) * w + x] = 2 * (lo_k - 1)


@njit(cache=True, nogil=True)
def flip_image(m, dist, out, edge, edge_z, is3d):
    """Flip sizes of one (D, H, W) mask into ``out`` (float32); returns the mask's own size."""
    d, h, w = m.shape
    open_border = edge == INF
    flat_out = out.reshape(out.size)
    dt_image(m, dist, edge, edge_z)
    nbg = 0
    flat_m = m.reshape(m.size)
    for i in range(flat_m.shape[0]):
        nbg += flat_m[i] == 0
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


@njit(cache=True, nogil=True)
def _flip_item(m, out, edge, edge_z, is3d):
    d, h, w = m.shape
    return flip_image(m, np.empty((d, h, w), np.int32), out, edge, edge_z, is3d)


@njit(cache=True, nogil=True)
def flip_batch_serial(m, out, sizes, edge, edge_z, is3d):
    for n in range(m.shape[0]):
        sizes[n] = _flip_item(m[n], out[n], edge, edge_z, is3d)


# Below this many voxels per batch (~1-3 ms of work), handing work to other threads costs more
# than it saves: on a busy machine a woken thread may wait milliseconds for a core.
PARALLEL_MIN_VOXELS = 1 << 20
_POOL: list = []  # [executor, pid of the process that made it]


def _run_over_batch(kernel, m, *arrays_and_args, n_arrays):
    """Run a serial ``nogil`` kernel over chunks of the batch on a pool of threads.

    ``arrays_and_args`` starts with ``n_arrays`` outputs indexed by image like ``m``; the rest
    are passed unchanged. The pool has ``NUMBA_NUM_THREADS`` workers, read from numba's config:
    ``numba.get_num_threads()`` would launch numba's threading layer, and its OpenMP layer then
    resets the process's OpenMP thread count, so torch set to one thread silently ran on all
    cores, spinning against the other training processes (a 2-4x slower epoch).
    Python threads running the nogil kernels replace numba's ``prange`` here: with the OpenMP
    threading layer, a ``prange`` launch on this oversubscribed 2-core machine cost a fixed
    ~12 ms per call (spinning workers), far more than the work on typical batches.
    """
    outputs, rest = arrays_and_args[:n_arrays], arrays_and_args[n_arrays:]
    n = m.shape[0]
    threads = min(numba.config.NUMBA_NUM_THREADS, n)
    if threads < 2 or m.size < PARALLEL_MIN_VOXELS:
        kernel(m, *outputs, *rest)
        return
    if not _POOL or _POOL[1] != os.getpid() or _POOL[0]._max_workers < threads:
        # (re)create after a fork too: a forked child (e.g. a DataLoader worker) has no threads
        _POOL[:] = [ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sizeseg"), os.getpid()]
    bounds = [(i * n) // threads for i in range(threads + 1)]
    jobs = [_POOL[0].submit(kernel, m[a:b], *(o[a:b] for o in outputs), *rest)
            for a, b in zip(bounds, bounds[1:]) if b > a]
    for job in jobs:
        job.result()


def dt_batch(m, out, edge, edge_z):
    """Distance transform of an (N, D, H, W) uint8 batch into ``out`` (int32)."""
    _run_over_batch(dt_batch_serial, m, out, edge, edge_z, n_arrays=1)


def size_batch(m, sizes, edge, edge_z):
    """Object sizes of an (N, D, H, W) uint8 batch into ``sizes`` (N,) float32."""
    _run_over_batch(size_batch_serial, m, sizes, edge, edge_z, n_arrays=1)


def flip_batch(m, out, sizes, edge, edge_z, is3d):
    """Flip sizes (into ``out``) and object sizes (into ``sizes``) of an (N, D, H, W) batch."""
    _run_over_batch(flip_batch_serial, m, out, sizes, edge, edge_z, is3d, n_arrays=2)

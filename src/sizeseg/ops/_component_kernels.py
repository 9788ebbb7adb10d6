"""Compiled CPU kernels for the per-object (connected-component) sizes and their flips.

Masks come as C-contiguous uint8 arrays (D, H, W) (``D = 1`` for 2D images), like the kernels of
:mod:`._numba_kernels`, whose distance transform and integral images are reused here. ``edge`` is
0 for ``border="background"`` and ``INF`` for ``border="open"``.

Notation: ``d`` is the Chebyshev distance transform of the whole mask, a component ``C`` has
``m_C = max_{p in C} d_p`` and size ``2 m_C`` (see :mod:`sizeseg.ops.components` for why this is the
component's own single-object size). A flip of pixel ``i`` changes the multiset of sizes by
removing some sizes and adding others; the kernels write both lists per pixel (at most ``W``
each: 4 in 2D, 6 for 6-connected and 8 for 26-connected volumes).

* background ``i`` -> foreground: the components touching ``i`` merge with ``i`` into ``M``; only
  the distances in ``M`` grow, and only those whose *unique* nearest background pixel is ``i``
  (they become the distance to the second nearest). One pass finds, for every pixel whose ball of
  radius ``d_p`` holds a single background pixel, that pixel (integral images of the count and of
  the linear index) and the second distance (binary search on the radius): O(V log V).
* foreground ``i`` -> background: only ``C(i)`` changes, its distances become
  ``min(d_p, delta(p, i))``. If ``i`` is not a cut pixel of ``C``, the new maximum is the largest
  ``k`` whose level set ``{p in C: d_p >= k}`` does not fit in the cube of radius ``k - 1`` around
  ``i`` (binary search over the level sets' bounding boxes, kept per component). Cut pixels
  (articulation points, from one iterative Tarjan DFS per component) have ``d_i = 1`` unless the
  image is a line (proof in :mod:`sizeseg.ops.components`), so each piece's maximum is its old
  maximum ``m_P`` or ``m_P - 1``: ``m_P - 1`` exactly when the bounding box of the piece's pixels
  at ``m_P`` fits in the cube of radius ``m_P - 1`` around ``i``. Pieces are DFS subtrees (their
  (max, box) aggregate is summed up the tree) and the rest of the component (preorder prefix and
  suffix aggregates plus the subtrees still attached): O(V) for all cut pixels.
* open-border images that are a single line (at most one axis longer than 1) are done run by run.

:func:`flip_losses_image` then evaluates the sorted-matching loss of every flipped multiset from
prefix sums of the loss along the sorted sizes shifted by ``-W..W`` ranks: O(W) per pixel.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._numba_kernels import INF, _box, _integral_images, _run_over_batch, dt_image

EMPTY = np.int32(0)  # the max of an empty aggregate (every foreground pixel has d >= 1)
# criterion codes: (t-s)^2, |t-s|, (t-s)^2 / max(t,1)^2, (t-s)^2 / max(t,s,1)^2
SQUARED, ABSOLUTE, RELATIVE, SYMMETRIC = 0, 1, 2, 3


def max_changes(spatial_dims: int, full: bool) -> int:
    """W: the most components a flip can remove or add (distinct components touching a pixel).

    Neighbours of ``i`` in different components are not adjacent, so they differ by 2 along
    some axis; mapping each to the corner (or, for face neighbours, the face) it points to is
    injective: at most 2**n corners for full connectivity, 2n faces for face connectivity.
    """
    if spatial_dims == 2:
        return 4
    return 8 if full else 6


@njit(cache=True, nogil=True)
def _neighbours(hp, wp, is3d, full):
    """Flat offsets in the padded array and the (dz, dy, dx) of each neighbour."""
    offs = np.empty(26, np.int64)
    dzyx = np.empty((26, 3), np.int32)
    n = 0
    for dz in range(-1, 2):
        if dz != 0 and not is3d:
            continue
        for dy in range(-1, 2):
            for dx in range(-1, 2):
                steps = abs(dz) + abs(dy) + abs(dx)
                if steps == 0 or (not full and steps != 1):
                    continue
                offs[n] = (dz * hp + dy) * wp + dx
                dzyx[n, 0] = dz
                dzyx[n, 1] = dy
                dzyx[n, 2] = dx
                n += 1
    return offs[:n], dzyx[:n]


@njit(cache=True, nogil=True)
def _merge(dst_m, dst_box, j, src_m, src_box, k):
    """Aggregate (max, bounding box of the pixels at the max): fold entry k of src into j of dst."""
    if src_m[k] > dst_m[j]:
        dst_m[j] = src_m[k]
        for a in range(6):
            dst_box[j, a] = src_box[k, a]
    elif src_m[k] == dst_m[j] and src_m[k] > 0:
        for a in range(0, 6, 2):
            dst_box[j, a] = min(dst_box[j, a], src_box[k, a])
            dst_box[j, a + 1] = max(dst_box[j, a + 1], src_box[k, a + 1])


@njit(cache=True, nogil=True)
def _cube_radius(box, j, z, y, x):
    """Chebyshev radius, seen from (z, y, x), of box j (z0, z1, y0, y1, x0, x1)."""
    return max(max(max(z - box[j, 0], box[j, 1] - z), max(y - box[j, 2], box[j, 3] - y)),
               max(x - box[j, 4], box[j, 5] - x))


@njit(cache=True, nogil=True)
def _dfs_forest(m, dist, is3d, full):
    """Components by iterative DFS (roots in raster order), with Tarjan's low links.

    Returns, indexed by preorder ``t``: coordinates, parent, low, last preorder index of the
    subtree (tout), component, subtree aggregate (max d, box of the pixels at it); the padded
    preorder map ``disc`` (-1 off the foreground), the padded foreground, the neighbour offsets and
    each component's first preorder index (``starts``, with the end appended).
    """
    d, h, w = m.shape
    zoff = 1 if is3d else 0
    hp, wp = h + 2, w + 2
    dp = d + 2 if is3d else 1
    fgp = np.zeros(dp * hp * wp, np.uint8)
    nfg = 0
    for z in range(d):
        for y in range(h):
            base = ((z + zoff) * hp + y + 1) * wp + 1
            for x in range(w):
                if m[z, y, x]:
                    fgp[base + x] = 1
                    nfg += 1
    offs, dzyx = _neighbours(hp, wp, is3d, full)
    nn = offs.shape[0]
    disc = np.full(dp * hp * wp, -1, np.int32)
    coord = np.empty((nfg, 3), np.int32)
    par = np.empty(nfg, np.int32)
    low = np.empty(nfg, np.int32)
    tout = np.empty(nfg, np.int32)
    comp = np.empty(nfg, np.int32)
    aggm = np.empty(nfg, np.int32)
    aggbox = np.empty((nfg, 6), np.int32)
    it = np.zeros(nfg, np.int32)
    stack = np.empty(nfg, np.int32)
    node = np.empty(nfg, np.int64)
    starts = np.empty(nfg + 1, np.int32)
    t = 0
    ncomp = 0
    for z in range(d):
        for y in range(h):
            for x in range(w):
                if m[z, y, x] == 0:
                    continue
                v0 = ((z + zoff) * hp + y + 1) * wp + x + 1
                if disc[v0] >= 0:
                    continue
                starts[ncomp] = t
                disc[v0] = t
                node[t] = v0
                coord[t, 0] = z
                coord[t, 1] = y
                coord[t, 2] = x
                par[t] = -1
                sp = 0
                stack[0] = t
                t += 1
                while sp >= 0:
                    ti = stack[sp]
                    if it[ti] == 0:  # first visit: initialise the node's own entries
                        low[ti] = ti
                        comp[ti] = ncomp
                        cz, cy, cx = coord[ti, 0], coord[ti, 1], coord[ti, 2]
                        aggm[ti] = dist[cz, cy, cx]
                        for a in range(3):
                            aggbox[ti, 2 * a] = coord[ti, a]
                            aggbox[ti, 2 * a + 1] = coord[ti, a]
                    if it[ti] < nn:
                        k = it[ti]
                        it[ti] = k + 1
                        v = node[ti] + offs[k]
                        if fgp[v] == 0:
                            continue
                        tw = disc[v]
                        if tw < 0:
                            disc[v] = t
                            node[t] = v
                            coord[t, 0] = coord[ti, 0] + dzyx[k, 0]
                            coord[t, 1] = coord[ti, 1] + dzyx[k, 1]
                            coord[t, 2] = coord[ti, 2] + dzyx[k, 2]
                            par[t] = ti
                            sp += 1
                            stack[sp] = t
                            t += 1
                        elif tw != par[ti] and tw < low[ti]:
                            low[ti] = tw
                    else:
                        sp -= 1
                        tout[ti] = t - 1
                        p = par[ti]
                        if p >= 0:
                            if low[ti] < low[p]:
                                low[p] = low[ti]
                            _merge(aggm, aggbox, p, aggm, aggbox, ti)
                ncomp += 1
    starts[ncomp] = t
    return coord, par, low, tout, comp, aggm, aggbox, disc, fgp, offs, starts[:ncomp + 1], node


@njit(cache=True, nogil=True)
def _prefix_suffix(aggm_point, box_point, starts):
    """Per component, aggregates of preorder [start, t) (prefix) and [t, end) (suffix)."""
    n = aggm_point.shape[0]
    pre_m = np.zeros(n, np.int32)
    pre_box = np.zeros((n, 6), np.int32)
    suf_m = np.zeros(n, np.int32)
    suf_box = np.zeros((n, 6), np.int32)
    for c in range(starts.shape[0] - 1):
        a, b = starts[c], starts[c + 1]
        for t in range(a + 1, b):
            _merge(pre_m, pre_box, t, pre_m, pre_box, t - 1)
            _merge(pre_m, pre_box, t, aggm_point, box_point, t - 1)
        _merge(suf_m, suf_box, b - 1, aggm_point, box_point, b - 1)
        for t in range(b - 2, a - 1, -1):
            _merge(suf_m, suf_box, t, suf_m, suf_box, t + 1)
            _merge(suf_m, suf_box, t, aggm_point, box_point, t)
    return pre_m, pre_box, suf_m, suf_box


@njit(cache=True, nogil=True)
def _level_boxes(coord, point_m, comp, comp_m):
    """Bounding boxes of each component's level sets {p in C: d_p >= k}, k = 1..m_C.

    Level k of component c sits at row ``offset[c] + k - 1``; sum of m_C <= V rows.
    """
    nc = comp_m.shape[0]
    offset = np.zeros(nc + 1, np.int64)
    for c in range(nc):
        offset[c + 1] = offset[c] + comp_m[c]
    box = np.empty((offset[nc], 6), np.int32)
    for r in range(offset[nc]):
        for a in range(0, 6, 2):
            box[r, a] = 1 << 30
            box[r, a + 1] = -1
    for t in range(coord.shape[0]):
        r = offset[comp[t]] + point_m[t] - 1
        for a in range(3):
            box[r, 2 * a] = min(box[r, 2 * a], coord[t, a])
            box[r, 2 * a + 1] = max(box[r, 2 * a + 1], coord[t, a])
    for c in range(nc):
        for k in range(comp_m[c] - 1, 0, -1):
            r = offset[c] + k - 1
            for a in range(0, 6, 2):
                box[r, a] = min(box[r, a], box[r + 1, a])
                box[r, a + 1] = max(box[r, a + 1], box[r + 1, a + 1])
    return box, offset


@njit(cache=True, nogil=True)
def _border_distance(z, y, x, d, h, w, is3d, open_border):
    """Chebyshev distance to the nearest pixel outside the array (INF under open borders)."""
    if open_border:
        return INF
    e = min(min(y + 1, h - y), min(x + 1, w - x))
    if is3d:
        e = min(e, min(z + 1, d - z))
    return e


@njit(cache=True, nogil=True)
def _grown_maxima(m, dist, is3d, open_border):
    """g[i] for every background pixel i: the largest new distance that flipping i creates.

    For each pixel p whose ball of radius d_p holds exactly one background pixel q (and no pixel
    outside the array), flipping q raises d_p to the distance of the second nearest background
    pixel; g[q] is the largest such value (>= 1: q itself is such a p). INF: no other background.
    """
    d, h, w = m.shape
    cnt, idx = _integral_images(m)
    g = np.zeros(d * h * w, np.int32)
    rmax = max(max(d, h), w)
    for z in range(d):
        for y in range(h):
            for x in range(w):
                dd = dist[z, y, x]
                e = _border_distance(z, y, x, d, h, w, is3d, open_border)
                if e <= dd:
                    continue
                rz = dd if is3d else 0
                z0, z1 = max(z - rz, 0), min(z + rz, d - 1)
                y0, y1 = max(y - dd, 0), min(y + dd, h - 1)
                x0, x1 = max(x - dd, 0), min(x + dd, w - 1)
                if _box(cnt, z0, z1, y0, y1, x0, x1, is3d) != 1:
                    continue
                q = _box(idx, z0, z1, y0, y1, x0, x1, is3d)
                # smallest r in (dd, min(e, rmax)) whose ball holds a second background pixel
                lo = dd + 1
                hi = min(e - 1, rmax) if e < INF else rmax
                second = e
                if lo <= hi:
                    rz = hi if is3d else 0
                    if _box(cnt, max(z - rz, 0), min(z + rz, d - 1), max(y - hi, 0),
                            min(y + hi, h - 1), max(x - hi, 0), min(x + hi, w - 1), is3d) >= 2:
                        while lo < hi:
                            r = (lo + hi) // 2
                            rz = r if is3d else 0
                            if _box(cnt, max(z - rz, 0), min(z + rz, d - 1), max(y - r, 0),
                                    min(y + r, h - 1), max(x - r, 0), min(x + r, w - 1), is3d) >= 2:
                                hi = r
                            else:
                                lo = r + 1
                        second = lo
                if second > g[q]:
                    g[q] = second
    return g


@njit(cache=True, nogil=True)
def _size_value(mm):
    return np.float32(np.inf) if mm >= INF else np.float32(2 * mm)


@njit(cache=True, nogil=True)
def _sort_desc(vals, n):
    for i in range(1, n):
        v = vals[i]
        j = i - 1
        while j >= 0 and vals[j] < v:
            vals[j + 1] = vals[j]
            j -= 1
        vals[j + 1] = v


@njit(cache=True, nogil=True)
def _run_size(n, left_bg, right_bg):
    """Half-size of a run of n pixels on an open-border line: max distance to the background."""
    if left_bg and right_bg:
        return (n + 1) // 2
    if left_bg or right_bg:
        return n
    return INF


@njit(cache=True, nogil=True)
def _line_image(flat, labels, sizes, removed, added):
    """Open-border line images (at most one axis longer than 1): runs, and flips run by run."""
    n = flat.shape[0]
    start = np.empty(n, np.int64)
    end = np.empty(n, np.int64)
    k = 0
    x = 0
    while x < n:
        if not flat[x]:
            labels[x] = 0
            x += 1
            continue
        a = x
        while x < n and flat[x]:
            x += 1
        b = x - 1
        sizes[k] = _size_value(_run_size(b - a + 1, a > 0, b < n - 1))
        k += 1
        for p in range(a, b + 1):
            labels[p] = k
            start[p] = a
            end[p] = b
    for x in range(n):
        if flat[x]:
            a, b = start[x], end[x]
            removed[x, 0] = sizes[labels[x] - 1]
            j = 0
            if x > a:
                added[x, j] = _size_value(_run_size(x - a, a > 0, True))
                j += 1
            if x < b:
                added[x, j] = _size_value(_run_size(b - x, True, b < n - 1))
                j += 1
            _sort_desc(added[x], j)
        else:
            a, b = x, x
            j = 0
            if x > 0 and flat[x - 1]:
                removed[x, j] = sizes[labels[x - 1] - 1]
                a = start[x - 1]
                j += 1
            if x < n - 1 and flat[x + 1]:
                removed[x, j] = sizes[labels[x + 1] - 1]
                b = end[x + 1]
                j += 1
            _sort_desc(removed[x], j)
            added[x, 0] = _size_value(_run_size(b - a + 1, a > 0, b < n - 1))
    return k


@njit(cache=True, nogil=True)
def _all_foreground_open(shape3, is3d, labels, sizes, removed, added):
    """Open border, no background: one component of infinite size; flipping i leaves the box
    minus i (connected: the image is not a line), whose maximum is the distance to the farthest
    corner."""
    d, h, w = shape3
    sizes[0] = np.inf
    u = 0
    for z in range(d):
        for y in range(h):
            for x in range(w):
                labels[u] = 1
                r = max(max(y, h - 1 - y), max(x, w - 1 - x))
                if is3d:
                    r = max(r, max(z, d - 1 - z))
                removed[u, 0] = np.inf
                added[u, 0] = np.float32(2 * r)
                u += 1
    return 1


@njit(cache=True, nogil=True)
def _general_image(m, dist, is3d, full, open_border, labels, sizes, removed, added):
    d, h, w = m.shape
    coord, par, low, tout, comp, aggm, aggbox, disc, fgp, offs, starts, node = _dfs_forest(
        m, dist, is3d, full)
    nfg = coord.shape[0]
    ncomp = starts.shape[0] - 1
    zoff = 1 if is3d else 0
    hp, wp = h + 2, w + 2
    # per-pixel (point) aggregates, before the subtree sums overwrote aggm/aggbox
    point_m = np.empty(nfg, np.int32)
    point_box = np.empty((nfg, 6), np.int32)
    for t in range(nfg):
        point_m[t] = dist[coord[t, 0], coord[t, 1], coord[t, 2]]
        for a in range(3):
            point_box[t, 2 * a] = coord[t, a]
            point_box[t, 2 * a + 1] = coord[t, a]
    comp_m = np.empty(ncomp, np.int32)
    for c in range(ncomp):
        comp_m[c] = aggm[starts[c]]
        sizes[c] = _size_value(comp_m[c])
    labp = np.zeros(fgp.shape[0], np.int32)
    for t in range(nfg):
        labp[node[t]] = comp[t] + 1
        labels[(coord[t, 0] * h + coord[t, 1]) * w + coord[t, 2]] = comp[t] + 1
    pre_m, pre_box, suf_m, suf_box = _prefix_suffix(point_m, point_box, starts)
    lvl, lvl_off = _level_boxes(coord, point_m, comp, comp_m)
    piece_m = np.zeros(1, np.int32)
    piece_box = np.zeros((1, 6), np.int32)
    nn = offs.shape[0]
    for t in range(nfg):
        c = comp[t]
        z, y, x = coord[t, 0], coord[t, 1], coord[t, 2]
        u = (z * h + y) * w + x
        removed[u, 0] = sizes[c]
        if starts[c + 1] - starts[c] == 1:
            continue  # a lone pixel: no piece left
        root = par[t] < 0
        nchild = 0
        nsep = 0
        for k in range(nn):
            v = node[t] + offs[k]
            if fgp[v]:
                tw = disc[v]
                if par[tw] == t:
                    nchild += 1
                    if low[tw] >= t:
                        nsep += 1
        if (root and nchild < 2) or (not root and nsep == 0):
            # C minus i stays connected: largest k whose level set escapes the cube of radius k-1
            base = lvl_off[c] - 1
            mc = comp_m[c]
            if _cube_radius(lvl, base + mc, z, y, x) > mc - 1:
                new = mc
            else:
                lo, hi = 1, mc
                while lo < hi:
                    k = (lo + hi) // 2
                    if _cube_radius(lvl, base + k, z, y, x) <= k - 1:
                        hi = k
                    else:
                        lo = k + 1
                new = lo - 1
            added[u, 0] = _size_value(new)
            continue
        if dist[z, y, x] != 1:
            raise AssertionError("cut pixel with distance != 1 outside a line image")
        j = 0
        if not root:  # the rest: C minus i's subtree, plus the children still attached above
            piece_m[0] = 0
            _merge(piece_m, piece_box, 0, pre_m, pre_box, t)
            if tout[t] + 1 < starts[c + 1]:
                _merge(piece_m, piece_box, 0, suf_m, suf_box, tout[t] + 1)
        for k in range(nn):
            v = node[t] + offs[k]
            if fgp[v]:
                tw = disc[v]
                if par[tw] != t:
                    continue
                if low[tw] >= t:  # a separated subtree: one piece
                    mm = aggm[tw]
                    shrink = _cube_radius(aggbox, tw, z, y, x) <= mm - 1
                    added[u, j] = _size_value(mm - 1 if shrink else mm)
                    j += 1
                elif not root:
                    _merge(piece_m, piece_box, 0, aggm, aggbox, tw)
        if not root:
            mm = piece_m[0]
            shrink = _cube_radius(piece_box, 0, z, y, x) <= mm - 1
            added[u, j] = _size_value(mm - 1 if shrink else mm)
            j += 1
        _sort_desc(added[u], j)
    g = _grown_maxima(m, dist, is3d, open_border)
    seen = np.empty(nn, np.int32)
    for z in range(d):
        for y in range(h):
            for x in range(w):
                if m[z, y, x]:
                    continue
                u = (z * h + y) * w + x
                labels[u] = 0
                v = ((z + zoff) * hp + y + 1) * wp + x + 1
                best = g[u]
                j = 0
                for k in range(nn):
                    lab = labp[v + offs[k]]
                    if lab == 0:
                        continue
                    dup = False
                    for jj in range(j):
                        dup = dup or seen[jj] == lab
                    if dup:
                        continue
                    seen[j] = lab
                    removed[u, j] = sizes[lab - 1]
                    best = max(best, comp_m[lab - 1])
                    j += 1
                _sort_desc(removed[u], j)
                added[u, 0] = _size_value(best)
    return ncomp


@njit(cache=True, nogil=True)
def object_flip_image(m, labels, sizes, removed, added, edge, edge_z, is3d, full):
    """Labels, component sizes (by label) and every pixel's removed / added sizes of one image.

    ``labels`` (V,) int32, ``sizes`` (>= K,) float32, ``removed``/``added`` (V, W) float32
    pre-filled with NaN. Returns the number of components K.
    """
    d, h, w = m.shape
    open_border = edge >= INF
    long_axes = (d > 1) + (h > 1) + (w > 1)
    flat = m.reshape(m.size)
    if open_border and long_axes <= 1:
        return _line_image(flat, labels, sizes, removed, added)
    nbg = 0
    for i in range(flat.shape[0]):
        nbg += flat[i] == 0
    if open_border and nbg == 0:
        return _all_foreground_open((d, h, w), is3d, labels, sizes, removed, added)
    dist = np.empty((d, h, w), np.int32)
    dt_image(m, dist, edge, edge_z)
    return _general_image(m, dist, is3d, full, open_border, labels, sizes, removed, added)


@njit(cache=True, nogil=True)
def object_flip_batch_serial(m, labels, sizes, counts, removed, added, edge, edge_z, is3d, full):
    for n in range(m.shape[0]):
        counts[n] = object_flip_image(m[n], labels[n], sizes[n], removed[n], added[n], edge,
                                      edge_z, is3d, full)


def object_flip_batch(m, labels, sizes, counts, removed, added, edge, edge_z, is3d, full):
    """Labels, sizes, counts and flip changes of an (N, D, H, W) batch (outputs preallocated)."""
    _run_over_batch(object_flip_batch_serial, m, labels, sizes, counts, removed, added, edge,
                    edge_z, is3d, full, n_arrays=5)


@njit(cache=True, nogil=True)
def object_sizes_image(m, labels, sizes, edge, edge_z, is3d, full):
    """Labels (V,) and component sizes (by label, into ``sizes``) of one image; returns K."""
    d, h, w = m.shape
    dist = np.empty((d, h, w), np.int32)
    dt_image(m, dist, edge, edge_z)
    coord, par, low, tout, comp, aggm, aggbox, disc, fgp, offs, starts, node = _dfs_forest(
        m, dist, is3d, full)
    labels[:] = 0
    for t in range(coord.shape[0]):
        labels[(coord[t, 0] * h + coord[t, 1]) * w + coord[t, 2]] = comp[t] + 1
    ncomp = starts.shape[0] - 1
    for c in range(ncomp):
        sizes[c] = _size_value(aggm[starts[c]])
    return ncomp


@njit(cache=True, nogil=True)
def object_sizes_batch_serial(m, labels, sizes, counts, edge, edge_z, is3d, full):
    for n in range(m.shape[0]):
        counts[n] = object_sizes_image(m[n], labels[n], sizes[n], edge, edge_z, is3d, full)


def object_sizes_batch(m, labels, sizes, counts, edge, edge_z, is3d, full):
    """Labels, sizes (by label) and component counts of an (N, D, H, W) batch."""
    _run_over_batch(object_sizes_batch_serial, m, labels, sizes, counts, edge, edge_z, is3d, full,
                    n_arrays=3)


@njit(cache=True, nogil=True)
def _term(target, size, code):
    diff = target - size
    if code == ABSOLUTE:
        return abs(diff)
    if code == RELATIVE:
        return diff * diff / max(target, 1.0) ** 2
    if code == SYMMETRIC:
        return diff * diff / max(target, size, 1.0) ** 2
    return diff * diff


@njit(cache=True, nogil=True)
def _shifted_prefix_sums(s, k, t, n, width, code):
    """Q[delta + W, u] = sum_{v < u} l(t[v - delta], s[v]) for delta in -W..W (zero-padded
    sequences; terms with v - delta < 0 are 0), over u <= L, and L itself.

    L leaves room for any flipped sequence: at most k + W sizes, shifted by at most W ranks.
    """
    length = max(n, k + width) + width + 1
    q = np.zeros((2 * width + 1, length + 1), np.float64)
    for di in range(2 * width + 1):
        delta = di - width
        acc = 0.0
        for u in range(length):
            j = u - delta
            if j >= 0:
                acc += _term(t[j] if j < n else 0.0, s[u] if u < k else 0.0, code)
            q[di, u + 1] = acc
    return q, length


@njit(cache=True, nogil=True)
def _rank_above(s, k, v):
    """Number of entries of the descending s[:k] that are > v."""
    lo, hi = 0, k
    while lo < hi:
        mid = (lo + hi) // 2
        if s[mid] > v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _ranks(values, s, k, cap, ranks, capped, stack_equal):
    """Count the sizes in ``values`` (descending, NaN-padded), writing each one capped and its
    rank in s (the number of larger entries; with ``stack_equal``, equal sizes take consecutive
    ranks, as removals of equal sizes must)."""
    n = 0
    prev = np.nan
    same = 0
    for j in range(values.shape[0]):
        v = values[j]
        if np.isnan(v):
            break
        v = min(v, cap)
        same = same + 1 if stack_equal and v == prev else 0
        ranks[n] = _rank_above(s, k, v) + same
        capped[n] = v
        prev = v
        n += 1
    return n


@njit(cache=True, nogil=True)
def _flipped_loss(q, length, width, s, k, t, n, rem, add, cap, code, rpos, ins, avals):
    """Sorted-matching loss of s - rem + add from the shifted prefix sums, in O(W log k).

    Kept sizes between two consecutive changes keep their order and move by a constant number
    of ranks (+1 per removal before them, -1 per insertion), so each such run is one difference
    of the prefix sums for that shift; each inserted size adds its own term.
    """
    p = _ranks(rem, s, k, cap, rpos, avals, True)
    nq = _ranks(add, s, k, cap, ins, avals, False)
    total = 0.0
    cur = 0
    delta = 0
    ia = 0
    ir = 0
    while ia < nq or ir < p:
        if ia < nq and (ir >= p or ins[ia] <= rpos[ir]):  # insertions first on ties
            e = ins[ia]
            total += q[delta + width, e] - q[delta + width, cur]
            pos = e - ir + ia
            total += _term(t[pos] if pos < n else 0.0, avals[ia], code)
            delta -= 1
            cur = e
            ia += 1
        else:
            e = rpos[ir]
            total += q[delta + width, e] - q[delta + width, cur]
            delta += 1
            cur = e + 1
            ir += 1
    total += q[delta + width, length] - q[delta + width, cur]
    return total


@njit(cache=True, nogil=True)
def object_flip_losses_image(m, target, out, edge, edge_z, is3d, full, width, cap, code):
    """Sorted-matching loss of the image (returned) and of every flipped copy (into ``out``).

    ``target``: the annotated sizes in descending order, zero-padded; ``cap`` replaces +inf.
    """
    v = m.size
    labels = np.empty(v, np.int32)
    sizes = np.empty(v, np.float32)
    removed = np.full((v, width), np.nan, np.float32)
    added = np.full((v, width), np.nan, np.float32)
    k = object_flip_image(m, labels, sizes, removed, added, edge, edge_z, is3d, full)
    s = np.empty(k, np.float64)
    for c in range(k):
        s[c] = min(sizes[c], cap)
    s = -np.sort(-s)
    n = target.shape[0]
    q, length = _shifted_prefix_sums(s, k, target, n, width, code)
    rpos = np.empty(width, np.int64)
    ins = np.empty(width, np.int64)
    avals = np.empty(width, np.float64)
    for u in range(v):
        out[u] = _flipped_loss(q, length, width, s, k, target, n, removed[u], added[u], cap, code,
                               rpos, ins, avals)
    return q[width, length]


@njit(cache=True, nogil=True)
def object_flip_losses_serial(m, targets, active, out, base, edge, edge_z, is3d, full, width, cap,
                              code):
    for i in range(m.shape[0]):
        if active[i]:
            base[i] = object_flip_losses_image(m[i], targets[i], out[i], edge, edge_z, is3d, full,
                                               width, cap, code)
        else:
            base[i] = 0.0
            out[i, :] = 0.0


def object_flip_losses(m, targets, active, out, base, edge, edge_z, is3d, full, width, cap, code):
    """Losses of an (N, D, H, W) batch and of all its flips; images with ``active`` False get 0.

    ``targets`` (N, T) float64 descending, zero-padded; ``out`` (N, V) and ``base`` (N,) float64.
    """
    _run_over_batch(object_flip_losses_serial, m, targets, active, out, base, edge, edge_z, is3d,
                    full, width, cap, code, n_arrays=4)

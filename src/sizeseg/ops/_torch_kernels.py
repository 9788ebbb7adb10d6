"""Pure-torch versions of the kernels, for CUDA tensors (and testable on CPU).

No host round trip: every loop count depends on shapes only, never on values.
Masks come as bool tensors of shape (N, D, H, W) (``D = 1`` for 2D images).

Distance transform. The Chebyshev distance separates over the axes:
``d(p) = min_q max(|p_a - q_a|, d'(q))`` where ``q`` runs along one axis and ``d'`` is the
transform over the remaining axes, starting from 0 on background and +inf on foreground. Along one
axis, ``d(p) >= k`` iff every value in the window of radius ``k - 1`` around ``p`` is ``>= k`` (and,
with a background border, the window fits inside the array). That predicate is monotone in ``k``,
so a binary search with range-minimum queries on a sparse table gives the axis transform in
O(V log n) work and memory.
"""

from __future__ import annotations

import functools

import torch

from ._inputs import NO_BACKGROUND


def _cap(shape: tuple[int, int, int]) -> int:
    """A stand-in for +inf: larger than every finite Chebyshev distance inside the array."""
    return max(shape) + 1


@functools.lru_cache(maxsize=64)
def _floor_log2_table(n: int, device: torch.device) -> torch.Tensor:
    """floor(log2(L)) for L = 0..n (0 at L = 0), built once per (n, device)."""
    lengths = torch.arange(n + 1, device=device).clamp(min=1)
    table = torch.zeros_like(lengths)
    for bit in range(1, max(n, 1).bit_length()):
        table += (lengths >> bit) > 0
    return table


def _axis_minmax(values: torch.Tensor, dim: int, open_border: bool, cap: int) -> torch.Tensor:
    """``g(p) = min_q max(|p - q|, values(q))`` along ``dim`` (values int32 in [0, cap])."""
    x = values.movedim(dim, -1).contiguous()
    n = x.shape[-1]
    rows = x.reshape(-1, n)
    levels = [rows]
    width = 1
    while 2 * width <= n:
        prev = levels[-1]
        nxt = torch.full_like(prev, cap)
        nxt[:, : n - 2 * width + 1] = torch.minimum(prev[:, : n - 2 * width + 1],
                                                    prev[:, width: n - width + 1])
        levels.append(nxt)
        width *= 2
    table = torch.stack(levels).reshape(-1)  # (J * R * n,)
    n_rows = rows.shape[0]
    device = x.device
    log2 = _floor_log2_table(n, device)
    pos = torch.arange(n, device=device, dtype=torch.int64).expand(n_rows, n)
    row_base = (torch.arange(n_rows, device=device, dtype=torch.int64) * n).unsqueeze(1)
    hi = rows.to(torch.int64)
    if not open_border:
        hi = torch.minimum(hi, torch.minimum(pos + 1, n - pos))
    lo = torch.zeros_like(hi)
    for _ in range(max(cap, 1).bit_length()):
        k = (lo + hi + 1) // 2
        a = (pos - k + 1).clamp(0, n - 1)  # k = 0 gives an empty window: ok by definition
        b = (pos + k - 1).clamp(0, n - 1)
        j = log2[(b - a + 1).clamp(min=1)]
        base = j * (n_rows * n) + row_base
        window_min = torch.minimum(table[base + a], table[base + b - (1 << j) + 1])
        ok = (window_min >= k) | (k == 0)
        lo = torch.where(ok, k, lo)
        hi = torch.where(ok, hi, k - 1)
    return lo.to(torch.int32).reshape(x.shape).movedim(-1, dim)


def _row_distance(fg: torch.Tensor, open_border: bool, cap: int) -> torch.Tensor:
    """Distance to the nearest background pixel in the same row (the first axis pass, cheaply):
    the index of the last background pixel to the left is a running maximum, the next one to the
    right a running minimum. Missing ones count as ``cap`` (open) or the border at -1 / W."""
    w = fg.shape[-1]
    x = torch.arange(w, device=fg.device, dtype=torch.int32).expand(fg.shape)
    far = -cap if open_border else -1
    left = torch.where(fg, far, x).cummax(dim=-1).values
    right = torch.where(fg, w - 1 - far, x).flip(-1).cummin(dim=-1).values.flip(-1)
    return torch.minimum(x - left, right - x).clamp(max=cap).to(torch.int32)


def dt_torch(fg: torch.Tensor, open_border: bool, is3d: bool) -> torch.Tensor:
    """Chebyshev distance transform of a bool batch (N, D, H, W) -> int32, same shape."""
    cap = _cap(tuple(fg.shape[1:]))
    dist = _row_distance(fg, open_border, cap)
    for dim in ((2, 1) if is3d else (2,)):
        dist = _axis_minmax(dist, dim, open_border, cap)
    if open_border:
        dist = torch.where(dist >= cap, torch.full_like(dist, NO_BACKGROUND), dist)
    return dist


def sizes_from_dt(dist: torch.Tensor) -> torch.Tensor:
    """2 * max distance per image (N,) float32, +inf where there is no background."""
    if dist.shape[0] == 0:
        return torch.zeros(0, dtype=torch.float32, device=dist.device)
    best = dist.reshape(dist.shape[0], -1).amax(dim=1)
    size = 2 * best.to(torch.float32)
    return torch.where(best >= NO_BACKGROUND, torch.full_like(size, float("inf")), size)


def _coords(shape: tuple[int, int, int], device: torch.device) -> list[torch.Tensor]:
    d, h, w = shape
    z = torch.arange(d, device=device).view(d, 1, 1).expand(d, h, w)
    y = torch.arange(h, device=device).view(1, h, 1).expand(d, h, w)
    x = torch.arange(w, device=device).view(1, 1, w).expand(d, h, w)
    return [z.reshape(-1), y.reshape(-1), x.reshape(-1)]


def _shrink_flips(dist: torch.Tensor, big_m: torch.Tensor, coords: list[torch.Tensor],
                  n_levels: int) -> torch.Tensor:
    """New max distance after each foreground pixel turns background (see the numba kernel)."""
    n_img = dist.shape[0]
    flat = dist.reshape(n_img, -1).to(torch.int64).clamp(max=n_levels)
    big = torch.iinfo(torch.int64).max
    lo = torch.full((n_img, n_levels + 1, 3), big, dtype=torch.int64, device=dist.device)
    hi = torch.full((n_img, n_levels + 1, 3), -1, dtype=torch.int64, device=dist.device)
    for a, c in enumerate(coords):
        src = c.unsqueeze(0).expand_as(flat)
        lo[:, :, a].scatter_reduce_(1, flat, src, reduce="amin")
        hi[:, :, a].scatter_reduce_(1, flat, src, reduce="amax")
    lo = lo.flip(1).cummin(1).values.flip(1)
    hi = hi.flip(1).cummax(1).values.flip(1)
    lo[:, 0] = 0  # level 0 is everything; never queried for a foreground pixel anyway
    pix = torch.stack(coords, dim=-1).unsqueeze(0)  # (1, V, 3)

    def contained(k: torch.Tensor) -> torch.Tensor:
        idx = k.unsqueeze(-1).expand(-1, -1, 3)
        lo_k = torch.gather(lo, 1, idx)
        hi_k = torch.gather(hi, 1, idx)
        radius = torch.maximum(pix - lo_k, hi_k - pix).amax(dim=-1)
        return radius <= k - 1

    k_lo = torch.ones_like(flat)
    k_hi = big_m.to(torch.int64).clamp(max=n_levels).unsqueeze(1).expand_as(flat) + 1
    for _ in range((n_levels + 1).bit_length()):
        mid = (k_lo + k_hi) // 2
        ok = contained(mid.clamp(max=n_levels))
        active = k_lo < k_hi
        k_hi = torch.where(active & ok, mid, k_hi)
        k_lo = torch.where(active & ~ok, mid + 1, k_lo)
    return k_lo - 1


def _window_sums(integral: torch.Tensor, r: int, open_border: bool, is3d: bool
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums over the cube of radius r around every pixel, from (N, D+1, H+1, W+1) integrals.

    Box sums separate over the axes: one difference of two gathered slices per axis.
    Returns (sums, valid) with shapes (N, D, H, W) and (D, H, W); with a background border a
    window must lie inside the array to count.
    """
    device = integral.device
    total = integral
    valid = torch.ones((), dtype=torch.bool, device=device)
    for axis in (3, 2, 1):
        n = integral.shape[axis] - 1
        rr = r if (axis > 1 or is3d) else 0
        c = torch.arange(n, device=device)
        high = (c + rr + 1).clamp(max=n)
        low = (c - rr).clamp(min=0)
        total = total.index_select(axis, high) - total.index_select(axis, low)
        inside = (c - rr >= 0) & (c + rr <= n - 1)
        valid = valid & inside.view([-1 if a == axis else 1 for a in (1, 2, 3)])
    if open_border:
        valid = torch.ones(total.shape[1:], dtype=torch.bool, device=device)
    return total, valid


def _integral(values: torch.Tensor) -> torch.Tensor:
    out = torch.nn.functional.pad(values, (1, 0, 1, 0, 1, 0))
    for dim in (1, 2, 3):
        out = out.cumsum(dim)
    return out


def flip_torch(fg: torch.Tensor, open_border: bool, is3d: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(flip sizes float32 (N, D, H, W), object sizes float32 (N,)) of a bool batch."""
    n_img, d, h, w = fg.shape
    shape = (d, h, w)
    device = fg.device
    if n_img == 0:
        return torch.zeros(fg.shape, device=device), torch.zeros(0, device=device)
    dist = dt_torch(fg, open_border, is3d)
    sizes = sizes_from_dt(dist)
    flat_d = dist.reshape(n_img, -1)
    no_bg = flat_d[:, 0] >= NO_BACKGROUND  # all pixels agree when there is no background
    big_m = torch.where(no_bg, torch.zeros_like(flat_d[:, 0]), flat_d.amax(dim=1)).to(torch.int64)
    coords = _coords(shape, device)
    n_levels = _cap(shape)

    # Foreground -> background.
    new_m = torch.where(flat_d > 0, _shrink_flips(torch.where(no_bg.unsqueeze(1), 0, flat_d),
                                                  big_m, coords, n_levels),
                        big_m.unsqueeze(1))

    # Background -> foreground: windows of radius k - 1 holding a single background pixel.
    bg = ~fg
    lin = torch.arange(d * h * w, device=device, dtype=torch.int64).view(1, d, h, w)
    # background count and sum of background linear indices, stacked to share every op
    integrals = _integral(torch.cat([bg.to(torch.int64), torch.where(bg, lin, 0)]))
    k_max = max(shape) if open_border else (min(shape if is3d else (h, w)) + 1) // 2
    dump = d * h * w  # a spare column collecting the writes of windows that do not count
    grown = torch.zeros((n_img, dump + 1), dtype=torch.int64, device=device)
    for k in range(1, k_max + 1):  # k rises, so a later write is the larger one
        sums, valid = _window_sums(integrals, k - 1, open_border, is3d)
        count, index = sums[:n_img], sums[n_img:]
        hit = (count == 1) & valid & (k > big_m).view(-1, 1, 1, 1)
        grown.scatter_(1, torch.where(hit, index, dump).reshape(n_img, -1), k)
    new_m = torch.maximum(new_m, grown[:, :dump])

    flips = 2 * new_m.to(torch.float32)
    inf = torch.full_like(flips, float("inf"))
    n_bg = bg.reshape(n_img, -1).sum(dim=1, keepdim=True)
    if open_border:
        # The only background pixel turned foreground leaves no background at all.
        flips = torch.where((n_bg == 1) & bg.reshape(n_img, -1), inf, flips)
        radius = torch.stack([torch.maximum(c, n - 1 - c) for c, n in zip(coords, shape)
                              ][0 if is3d else 1:]).amax(dim=0)
        flips = torch.where(no_bg.unsqueeze(1), 2 * radius.to(torch.float32).unsqueeze(0), flips)
    return flips.reshape(fg.shape), sizes

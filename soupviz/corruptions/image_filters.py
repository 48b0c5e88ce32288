"""Linear resampling and filtering of image batches in torch, ported exactly from the SciPy,
scikit-image, ImageMagick and PIL calls of CIFAR-10-C's make_cifar_c.py: Gaussian and motion
blur, clipped zoom, PIL box resizing and the plasma fractal. Used by `soupviz.corruptions.cifar_c`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


def _pad_index(n: int, r: int, mode: str) -> torch.Tensor:
    """Indices padding a length-n axis by r: "nearest" repeats the edge; "reflect" mirrors
    about it (d c b a | a b c d), as SciPy's modes of those names."""
    i = torch.arange(-r, n + r)
    if mode == "nearest":
        return i.clamp(0, n - 1)
    i = i % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


@lru_cache(maxsize=64)
def _gaussian_matrix(n: int, sigma: float, mode: str, truncate: float) -> torch.Tensor:
    """(n, n) linear map of scipy.ndimage.gaussian_filter1d along one axis, border included."""
    r = int(truncate * sigma + 0.5)
    if r == 0:
        return torch.eye(n, dtype=torch.float64)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    m = torch.zeros(n, n, dtype=torch.float64)
    rows = torch.arange(n)[:, None].expand(n, 2 * r + 1)
    source = _pad_index(n, r, mode).unfold(0, 2 * r + 1, 1)  # (n, 2r+1)
    return m.index_put_((rows, source), (k / k.sum()).expand(n, -1), accumulate=True)


def gaussian_blur(x: torch.Tensor, sigma: float, mode: str, truncate: float = 4.0) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter over H and W of (N, C, H, W) (skimage's `gaussian`)."""
    h, w = x.shape[-2:]
    gh, gw = (_gaussian_matrix(s, float(sigma), mode, truncate).to(x) for s in (h, w))
    return gh @ x @ gw.T


def motion_blur(x: torch.Tensor, radius: float, sigma: float, angles: torch.Tensor,
                 ) -> torch.Tensor:
    """ImageMagick's MotionBlurImage: a one-sided half-Gaussian along a line at `angles`
    (degrees, one per image), width 2*ceil(radius)+1 pixels, edge pixels repeated."""
    n, c, h, w = x.shape
    i = torch.arange(2 * math.ceil(radius) + 1, dtype=torch.float64)
    k = torch.exp(-i**2 / (2 * sigma**2))
    k = (k / k.sum()).tolist()
    a = torch.deg2rad(angles.double())[:, None]
    dx, dy = torch.ceil(i * torch.cos(a) - 0.5).long(), torch.ceil(i * torch.sin(a) - 0.5).long()
    rows = (torch.arange(h)[None, :, None] + dy[:, None, :]).clamp(0, h - 1).to(x.device)
    cols = (torch.arange(w)[None, :, None] + dx[:, None, :]).clamp(0, w - 1).to(x.device)
    flat = x.reshape(n, c, h * w)
    out = torch.zeros_like(flat)
    for j, weight in enumerate(k):
        index = (rows[:, :, None, j] * w + cols[:, None, :, j]).view(n, 1, h * w)
        out += weight * flat.gather(2, index.expand(n, c, h * w))
    return out.view_as(x)


@lru_cache(maxsize=64)
def zoom_matrix(n: int, zoom: float) -> torch.Tensor:
    """(n, n) linear map of clipped_zoom along one axis: crop the centre ceil(n/zoom), resize
    by `zoom` as scipy.ndimage.zoom(order=1) does, crop the centre n."""
    crop = int(np.ceil(n / zoom))
    top, size = (n - crop) // 2, int(round(crop * zoom))
    pos = torch.arange(size, dtype=torch.float64) * ((crop - 1) / max(size - 1, 1))
    lo = pos.floor().long().clamp(max=crop - 1)
    frac, hi = pos - lo, (lo + 1).clamp(max=crop - 1)
    m = torch.zeros(size, n, dtype=torch.float64)
    m.index_put_((torch.arange(size), top + lo), 1 - frac, accumulate=True)
    m.index_put_((torch.arange(size), top + hi), frac, accumulate=True)
    trim = (size - n) // 2
    return m[trim:trim + n]


def clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """The original's clipped_zoom over H and W of (N, C, H, W): centre zoom by `zoom`, same size."""
    zh, zw = (zoom_matrix(s, float(zoom)).to(x) for s in x.shape[-2:])
    return zh @ x @ zw.T


@lru_cache(maxsize=64)
def pil_box_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) weights of PIL's resize with Image.BOX (Resample.c, precompute_coeffs):
    counts input pixel centres under each output pixel; nearest pixel when enlarging."""
    scale = n_in / n_out
    support = 0.5 * max(scale, 1.0)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for o in range(n_out):
        centre = (o + 0.5) * scale
        for i in range(max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n_in)):
            m[o, i] = float(-0.5 < (i - centre + 0.5) / max(scale, 1.0) <= 0.5)
    return m / m.sum(1, keepdim=True)


def plasma_fractal(n: int, size: int, decay: float, g: torch.Generator) -> torch.Tensor:
    """(n, size, size) diamond-square height maps in [0, 1], as the original's plasma_fractal;
    `size` a power of two."""
    maps = torch.zeros(n, size, size, dtype=torch.float64)
    step, wibble = size, 100.0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        jitter = torch.rand(total.shape, generator=g, dtype=torch.float64) * 2 - 1
        return total / 4 + wibble * wibble * jitter

    while step >= 2:
        half = step // 2
        corners = maps[:, ::step, ::step]
        squares = corners + corners.roll(-1, 1)
        maps[:, half::step, half::step] = wibbled_mean(squares + squares.roll(-1, 2))
        centres, corners = maps[:, half::step, half::step], maps[:, ::step, ::step]
        maps[:, ::step, half::step] = wibbled_mean(
            centres + centres.roll(1, 1) + corners + corners.roll(-1, 2))
        maps[:, half::step, ::step] = wibbled_mean(
            centres + centres.roll(1, 2) + corners + corners.roll(-1, 1))
        step, wibble = half, wibble / decay
    maps -= maps.amin((1, 2), keepdim=True)
    return maps / maps.amax((1, 2), keepdim=True)

"""CIFAR-10-C-style corruptions (Hendrycks & Dietterich, ICLR 2019) on batches, in torch.

Owns the registry and `corrupt(images, name, severity, seed)`: 14 of the 15 corruptions with the
CIFAR severity constants of hendrycks/robustness, ImageNet-C/create_c/make_cifar_c.py, porting its
ImageMagick, OpenCV, scikit-image, SciPy and PIL calls (the filters in `image_filters`); frost is
left out (it needs their photos).
"""

from __future__ import annotations

import io
import operator
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from soupviz.corruptions import image_filters
from soupviz.errors import SoupvizError

Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]
CORRUPTIONS: dict[str, Corruption] = {}
CORRUPTION_GROUPS: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "fog", "brightness"),  # frost needs the authors' six frost photographs
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}
_ALL_CORRUPTIONS = tuple(name for names in CORRUPTION_GROUPS.values() for name in names)
SEVERITIES = (1, 2, 3, 4, 5)

GAUSSIAN_NOISE = (0.04, 0.06, 0.08, 0.09, 0.10)  # standard deviation
SHOT_NOISE = (500, 250, 100, 75, 50)  # Poisson photons at intensity 1
IMPULSE_NOISE = (0.01, 0.02, 0.03, 0.05, 0.07)  # fraction of values set to 0 or 1
DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))  # radius, alias blur
GLASS_BLUR = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))  # sigma, step, it
MOTION_BLUR = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))  # ImageMagick radius, sigma
ZOOM_BLUR = tuple(np.arange(1, stop, 0.01) for stop in (1.06, 1.11, 1.16, 1.21, 1.26))
SNOW = ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))  # mean, std, zoom, threshold, radius, sigma, mix
FOG = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))  # strength, wibble decay
BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)  # added to HSV value
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)  # factor on the deviation from the channel mean
ELASTIC = ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
           (0.1, 0.03, 0.03))  # alpha, sigma, affine jitter, in units of the image side (32)
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)  # side scale of the low-resolution image
JPEG_QUALITY = (80, 65, 58, 50, 40)


def corruption_names(group: str | None = None) -> tuple[str, ...]:
    """Registered corruption names in the paper's order, all or those of one group."""
    if group is None:
        return _ALL_CORRUPTIONS  # every MetricSpec checks its corruption here: thousands per store read
    if group not in CORRUPTION_GROUPS:
        raise SoupvizError(f"Unknown corruption group {group!r}: use one of "
                           f"{', '.join(CORRUPTION_GROUPS)}.")
    return CORRUPTION_GROUPS[group]


def corruption_label(name: str, severity: int | None = None) -> str:
    """How a corruption is named to people: 'Gaussian noise', or 'Gaussian noise, severity 3'.

    Example:
        >>> corruption_label("jpeg_compression", 5)
        'JPEG compression, severity 5'
    """
    words = name.replace("jpeg", "JPEG").replace("gaussian", "Gaussian").split("_")
    text = " ".join(words)
    text = text[0].upper() + text[1:]
    return text if severity is None else f"{text}, severity {severity}"


def corruption_group(name: str) -> str:
    """The group ("noise", "blur", "weather" or "digital") of corruption `name`."""
    for group, names in CORRUPTION_GROUPS.items():
        if name in names:
            return group
    raise SoupvizError(f"Unknown corruption {name!r}: use one of {', '.join(corruption_names())}.")


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Corrupt a batch of images as CIFAR-10-C does.

    All random numbers come from one CPU `torch.Generator` seeded with `seed`, so the result
    depends only on (images, name, severity, seed), on any device; it does depend on the whole
    batch, so corrupt a fixed evaluation set in fixed batches. The original's intermediate 8-bit
    rounding (PIL/PNG round trips, and CIFAR-10-C's final uint8 files) is not reproduced,
    except for JPEG, which is an 8-bit codec.

    Args:
        images: float (N, 3, H, W), pixels in [0, 1], any device; not modified. The parameters
            are CIFAR's, in pixels of 32x32 images; other sizes use them unchanged.
        name: one of `corruption_names()`.
        severity: 1 (mildest) to 5.
        seed: seed of the random draws (noise, angles, fog, snow, displacements).

    Returns:
        The corrupted images: same shape, dtype and device, clamped to [0, 1].

    Example:
        >>> x = torch.rand(8, 3, 32, 32)
        >>> corrupt(x, "fog", 3, seed=1).shape
        torch.Size([8, 3, 32, 32])
    """
    if name not in CORRUPTIONS:
        corruption_group(name)  # raises the clear error
    try:
        valid = not isinstance(severity, bool) and operator.index(severity) in SEVERITIES
    except TypeError:
        valid = False
    if not valid:
        raise SoupvizError(f"Corruption severity {severity!r} is not an integer from 1 to 5.")
    if not (torch.is_tensor(images) and images.is_floating_point() and images.dim() == 4
            and images.shape[1] == 3):
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise SoupvizError(f"Images to corrupt must be float (N, 3, H, W) in [0, 1], got {shape}.")
    if images.shape[0] == 0:
        return images.clone()
    generator = torch.Generator().manual_seed(int(seed))
    out = CORRUPTIONS[name](images.float().contiguous(), operator.index(severity), generator)
    return out.clamp(0, 1).to(images.dtype)


def _register(function: Corruption) -> Corruption:
    CORRUPTIONS[function.__name__] = function
    return function


def _rand(shape: tuple[int, ...], g: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=g).to(like.device)


def _randn(shape: tuple[int, ...], g: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=g).to(like.device)


@_register
def gaussian_noise(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Add independent Gaussian noise of the severity's standard deviation to every value."""
    return x + GAUSSIAN_NOISE[severity - 1] * _randn(x.shape, g, x)


@_register
def shot_noise(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Photon noise: Poisson(x * c) / c, with c photons at full intensity."""
    c = SHOT_NOISE[severity - 1]
    return torch.poisson(x.cpu().clamp(0, 1) * c, generator=g).to(x.device) / c


@_register
def impulse_noise(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """skimage's salt-and-pepper: each value flips with the given probability, half to 1."""
    flipped = _rand(x.shape, g, x) < IMPULSE_NOISE[severity - 1]
    salt = (_rand(x.shape, g, x) < 0.5).to(x.dtype)
    return torch.where(flipped, salt, x)


@_register
def defocus_blur(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Convolve with the original's anti-aliased disk (OpenCV filter2D, reflect-101 border)."""
    radius, alias_blur = DEFOCUS_BLUR[severity - 1]
    t = torch.arange(-8, 9, dtype=torch.float64)
    disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius**2).double()
    g1 = torch.exp(-torch.arange(-1.0, 2.0, dtype=torch.float64) ** 2 / (2 * alias_blur**2))
    g1 = g1 / g1.sum()
    kernel = F.conv2d((disk / disk.sum())[None, None], torch.outer(g1, g1)[None, None], padding=1)
    kernel = kernel[0, 0, 6:11, 6:11]  # the rest is exactly zero for radii <= 1.5
    kernel = kernel.to(x).expand(3, 1, 5, 5)
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect").contiguous(memory_format=torch.channels_last)
    return F.conv2d(padded, kernel, groups=3).contiguous()  # channels-last: 7x faster on CPU


@_register
def glass_blur(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Blur, swap each pixel with a random neighbour sweeping bottom-right to top-left, blur."""
    sigma, delta, iterations = GLASS_BLUR[severity - 1]
    n, c, h, w = x.shape
    x = image_filters.gaussian_blur(x, sigma, "nearest")
    hs, ws = range(h - delta, delta, -1), range(w - delta, delta, -1)
    shifts = torch.randint(-delta, delta, (iterations, len(hs), len(ws), n, 2), generator=g)
    shifts, perm, rows = shifts.numpy(), np.tile(np.arange(h * w), (n, 1)), np.arange(n)
    for it in range(iterations):
        for a, hh in enumerate(hs):
            for b, ww in enumerate(ws):
                dx, dy = shifts[it, a, b, :, 0], shifts[it, a, b, :, 1]
                here, there = hh * w + ww, (hh + dy) * w + ww + dx
                swapped = perm[:, here].copy()
                perm[:, here] = perm[rows, there]
                perm[rows, there] = swapped
    index = torch.from_numpy(perm).to(x.device)[:, None].expand(n, c, h * w)
    swapped = x.reshape(n, c, h * w).gather(2, index).view_as(x)
    return image_filters.gaussian_blur(swapped, sigma, "nearest")


@_register
def motion_blur(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """ImageMagick's motion blur at a uniform random angle in [-45, 45] degrees per image."""
    radius, sigma = MOTION_BLUR[severity - 1]
    return image_filters.motion_blur(x, radius, sigma, torch.rand(x.shape[0], generator=g) * 90 - 45)


@lru_cache(maxsize=8)
def _zoom_blur_matrix(h: int, w: int, severity: int) -> torch.Tensor:
    """(H*W, H*W) sum over the severity's zooms of kron(zoom_h, zoom_w), acting on flat images."""
    zooms = [float(z) for z in ZOOM_BLUR[severity - 1]]
    zh = torch.stack([image_filters.zoom_matrix(h, z) for z in zooms])
    zw = torch.stack([image_filters.zoom_matrix(w, z) for z in zooms])
    return torch.einsum("zik,zjl->ijkl", zh, zw).reshape(h * w, h * w).float()


@_register
def zoom_blur(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Average of the image and its centre zooms by 1, 1.01, ... (scipy zoom, bilinear)."""
    count = len(ZOOM_BLUR[severity - 1]) + 1
    h, w = x.shape[-2:]
    if h * w <= 64 * 64:  # one matrix product over flat images: fastest for small images
        zoomed = x.flatten(-2) @ _zoom_blur_matrix(h, w, severity).to(x).T
        return (x + zoomed.view_as(x)) / count
    return (x + sum(image_filters.clipped_zoom(x, z) for z in ZOOM_BLUR[severity - 1])) / count


@_register
def snow(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Thresholded, zoomed Gaussian flakes, motion-blurred, added twice (once rotated 180°)
    to a brightened image."""
    mean, std, zoom, threshold, radius, sigma, mix = SNOW[severity - 1]
    n, _, h, w = x.shape
    flakes = image_filters.clipped_zoom(_randn((n, 1, h, w), g, x) * std + mean, zoom)
    flakes = torch.where(flakes < threshold, 0.0, flakes).clamp(0, 1)
    flakes = image_filters.motion_blur(flakes, radius, sigma, torch.rand(n, generator=g) * 90 - 135)
    grey = (torch.tensor([0.299, 0.587, 0.114]).to(x).view(1, 3, 1, 1) * x).sum(1, keepdim=True)
    x = mix * x + (1 - mix) * torch.maximum(x, grey * 1.5 + 0.5)
    return x + flakes + flakes.flip(-2, -1)


@_register
def fog(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Add a plasma fractal (power-of-two side covering the image), rescale by max/(max+c)."""
    strength, decay = FOG[severity - 1]
    n, _, h, w = x.shape
    size = max(2, 1 << (max(h, w) - 1).bit_length())
    fractal = image_filters.plasma_fractal(n, size, decay, g)[:, None, :h, :w].to(x)
    top = x.amax((1, 2, 3), keepdim=True)
    return (x + strength * fractal) * top / (top + strength)


@_register
def brightness(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Add to the HSV value keeping hue and saturation: RGB scales by new value / old value."""
    value = x.amax(1, keepdim=True)
    new = (value + BRIGHTNESS[severity - 1]).clamp(0, 1)
    return torch.where(value > 0, x * new / value.clamp_min(1e-12), new)


@_register
def contrast(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Shrink each channel towards its per-image mean by the severity's factor."""
    mean = x.mean((2, 3), keepdim=True)
    return (x - mean) * CONTRAST[severity - 1] + mean


@_register
def elastic_transform(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Random affine warp of three points (OpenCV, reflect-101 border), then a smoothed random
    displacement field (SciPy map_coordinates, mirror border); both bilinear."""
    n, _, h, w = x.shape
    side = min(h, w)
    alpha, sigma, jitter = (v * side for v in ELASTIC[severity - 1])
    cx, cy, sq = w // 2, h // 2, side // 3
    src = torch.tensor([[cx + sq, cy + sq], [cx + sq, cy - sq], [cx - sq, cy - sq]]).double()
    dst = src + (torch.rand(n, 3, 2, generator=g, dtype=torch.float64) * 2 - 1) * jitter
    homogeneous = torch.cat([src, torch.ones(3, 1, dtype=torch.float64)], 1)
    affine = torch.linalg.solve(homogeneous, dst).transpose(1, 2)  # (N, 2, 3): src -> dst
    ys, xs = torch.meshgrid(torch.arange(h).double(), torch.arange(w).double(), indexing="ij")
    out_xy = torch.stack([xs, ys], -1).view(1, h * w, 2) - affine[:, None, :, 2]
    in_xy = torch.linalg.solve(affine[:, :, :2], out_xy.transpose(1, 2)).transpose(1, 2)
    scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], dtype=torch.float64)
    grid = (in_xy * scale - 1).view(n, h, w, 2).to(x)
    x = F.grid_sample(x, grid, padding_mode="reflection", align_corners=True)
    field = torch.rand(n, 2, h, w, generator=g, dtype=torch.float64) * 2 - 1
    field = image_filters.gaussian_blur(field, sigma, "reflect", truncate=3.0) * alpha
    sample = torch.stack([xs + field[:, 0], ys + field[:, 1]], -1)
    grid = ((2 * sample + 1) / torch.tensor([w, h], dtype=torch.float64) - 1).to(x)
    return F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)


@_register
def pixelate(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """PIL BOX resize to int(side * c), then BOX (nearest) back, as one linear map per axis."""
    c = PIXELATE[severity - 1]
    h, w = x.shape[-2:]
    box = image_filters.pil_box_matrix
    mh, mw = (box(int(s * c), s) @ box(s, int(s * c)) for s in (h, w))
    return mh.to(x) @ x @ mw.to(x).T


@_register
def jpeg_compression(x: torch.Tensor, severity: int, g: torch.Generator) -> torch.Tensor:
    """Round-trip each image through PIL's JPEG codec (libjpeg) at the original quality."""
    quality = JPEG_QUALITY[severity - 1]
    arrays = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = []
    for array in arrays:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
        decoded.append(np.asarray(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).to(x) / 255

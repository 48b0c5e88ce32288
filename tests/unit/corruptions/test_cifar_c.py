"""Specification of soupviz.corruptions.cifar_c: the CIFAR-10-C corruptions on small synthetic batches.

Where the original calls another library, the port is checked against that library's
behaviour (PIL, SciPy, ImageMagick's C loop, the original plasma fractal) on the same inputs.
"""

import colorsys
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from soupviz.corruptions import cifar_c as C
from soupviz.corruptions import image_filters
from soupviz.corruptions.cifar_c import corrupt, corruption_group, corruption_names
from soupviz.errors import SoupvizError

ALL = corruption_names()
SEEDED = ("gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow",
          "fog", "elastic_transform")
# Severities whose original parameters differ only negligibly (motion blur 3 and 4 share
# sigma 2; the wider kernel of 4 adds taps of relative weight below 1e-9).
TIES = {("motion_blur", 3)}


def natural_batch(n: int = 6, seed: int = 0) -> torch.Tensor:
    """Images with a roughly 1/f spectrum, like photographs: smooth shapes plus fine detail."""
    g = torch.Generator().manual_seed(seed)
    x = sum(F.interpolate(torch.rand(n, 3, s, s, generator=g), size=32, mode="bilinear") / s**0.5
            for s in (2, 4, 8, 16, 32))
    lo, hi = x.amin((1, 2, 3), keepdim=True), x.amax((1, 2, 3), keepdim=True)
    return 0.05 + 0.9 * (x - lo) / (hi - lo)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return natural_batch()


def mad(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().mean().item()


def test_registry_has_the_fourteen_corruptions_in_the_papers_four_groups():
    assert set(ALL) == set(C.CORRUPTIONS) and len(ALL) == 14 and "frost" not in ALL
    assert corruption_names("noise") == ("gaussian_noise", "shot_noise", "impulse_noise")
    assert {corruption_group(name) for name in ALL} == {"noise", "blur", "weather", "digital"}
    assert corruption_group("jpeg_compression") == "digital"


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_and_range_are_preserved_and_input_untouched(images, name, dtype):
    x = images.to(dtype)
    before = x.clone()
    for severity in (1, 5):
        out = corrupt(x, name, severity)
        assert out.shape == x.shape and out.dtype == dtype
        assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
    assert torch.equal(x, before)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_result_and_other_seeds_differ_only_when_random(images, name):
    a, b = corrupt(images, name, 3, seed=7), corrupt(images, name, 3, seed=7)
    assert torch.equal(a, b)
    other = corrupt(images, name, 3, seed=8)
    assert torch.equal(a, other) == (name not in SEEDED)


@pytest.mark.parametrize("name", [n for n in ALL if n not in ("glass_blur", "elastic_transform")])
def test_distortion_grows_with_severity(images, name):
    distortion = [mad(corrupt(images, name, s), images) for s in C.SEVERITIES]
    for s, (low, high) in enumerate(zip(distortion, distortion[1:], strict=False), start=1):
        assert high > low - 1e-6 if (name, s) in TIES else high > low, (s, distortion)


def test_glass_blur_mildest_only_moves_pixels_and_second_sweep_adds_distortion(images):
    # Severity 1 blurs with sigma 0.05, an identity kernel in scikit-image's truncation.
    out = corrupt(images, "glass_blur", 1)
    for moved, clean in zip(out, images, strict=True):
        pixels = [t.permute(1, 2, 0).reshape(-1, 3) for t in (moved, clean)]
        values, counts = zip(*(torch.unique(p, dim=0, return_counts=True) for p in pixels),
                             strict=True)
        assert torch.equal(*values) and torch.equal(*counts)
    assert not torch.equal(out, images)
    # The original's severities are not ordered by pixel change: more blur also smooths the
    # shuffle. At equal blur, two sweeps (4, 5) distort more than one (2, 3).
    d = {s: mad(corrupt(images, "glass_blur", s), images) for s in C.SEVERITIES}
    assert d[4] > d[2] and d[5] > d[3]


def test_elastic_mildest_is_affine_and_local_warping_grows_with_severity():
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    ramp = (0.2 + 0.6 * (0.6 * xs + 0.4 * ys) / 31).expand(8, 3, 32, 32)

    def roughness(s: int) -> float:  # a warped ramp stays linear iff the warp is affine
        y = corrupt(ramp, "elastic_transform", s).double()[..., 8:24, 8:24]
        return ((y[..., 2:, :] - 2 * y[..., 1:-1, :] + y[..., :-2, :]).abs().mean()
                + (y[..., 2:] - 2 * y[..., 1:-1] + y[..., :-2]).abs().mean()).item()

    r = [roughness(s) for s in C.SEVERITIES]
    assert r[0] < 1e-5 and all(b > a for a, b in zip(r, r[1:], strict=False)), r
    assert not torch.allclose(corrupt(ramp, "elastic_transform", 1), ramp, atol=1e-3)


def original_elastic_transform(image: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """make_cifar_c.py's elastic_transform, OpenCV's warpAffine written with SciPy (mode
    "mirror" is BORDER_REFLECT_101), replaying the implementation's two draws in order."""
    ndimage = pytest.importorskip("scipy.ndimage")
    g = torch.Generator().manual_seed(seed)
    jitter = (torch.rand(1, 3, 2, generator=g, dtype=torch.float64)[0] * 2 - 1).numpy()
    field = (torch.rand(1, 2, 32, 32, generator=g, dtype=torch.float64)[0] * 2 - 1).numpy()
    alpha, sigma, affine = (v * 32 for v in C.ELASTIC[severity - 1])
    centre, square = np.float32((32, 32)) // 2, 32 // 3
    pts1 = np.float32([centre + square, [centre[0] + square, centre[1] - square],
                       centre - square])
    matrix = np.linalg.solve(np.concatenate([pts1, np.ones((3, 1))], 1), pts1 + jitter * affine)
    inverse = np.linalg.inv(np.vstack([matrix.T, [0, 0, 1]]))[[1, 0]][:, [1, 0, 2]]  # (row, col)
    warped = np.stack([ndimage.affine_transform(image[..., ch], inverse[:, :2], inverse[:, 2],
                                                order=1, mode="mirror") for ch in range(3)], -1)
    dx, dy = (ndimage.gaussian_filter(f, sigma, mode="reflect", truncate=3)[..., None] * alpha
              for f in field)
    x, y, z = np.meshgrid(np.arange(32), np.arange(32), np.arange(3))
    indices = np.reshape(y + dy, (-1, 1)), np.reshape(x + dx, (-1, 1)), np.reshape(z, (-1, 1))
    out = ndimage.map_coordinates(warped, indices, order=1, mode="reflect").reshape(image.shape)
    return np.clip(out, 0, 1)


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_elastic_transform_matches_the_original_with_the_same_draws(severity):
    image = np.random.default_rng(4).random((32, 32, 3))
    out = corrupt(torch.from_numpy(image).permute(2, 0, 1)[None], "elastic_transform", severity,
                  seed=severity)
    expected = original_elastic_transform(image, severity, seed=severity)
    assert np.abs(out[0].permute(1, 2, 0).numpy() - expected).max() < 1e-5


def test_gaussian_noise_has_the_papers_standard_deviation():
    grey = torch.full((16, 3, 32, 32), 0.5)
    for severity, std in enumerate(C.GAUSSIAN_NOISE, start=1):
        noise = corrupt(grey, "gaussian_noise", severity, seed=severity) - grey
        assert abs(noise.std().item() / std - 1) < 0.03 and abs(noise.mean().item()) < 3e-3


def test_shot_noise_is_poisson_with_the_papers_photon_count():
    grey = torch.full((16, 3, 32, 32), 0.5)
    for severity, photons in enumerate(C.SHOT_NOISE, start=1):
        out = corrupt(grey, "shot_noise", severity, seed=severity)
        assert torch.allclose(out * photons, (out * photons).round(), atol=1e-3)
        assert abs(out.mean().item() - 0.5) < 3e-3
        assert abs(out.var().item() / (0.5 / photons) - 1) < 0.05


def test_impulse_noise_sets_the_papers_fraction_to_black_or_white():
    grey = torch.full((16, 3, 32, 32), 0.5)
    for severity, amount in enumerate(C.IMPULSE_NOISE, start=1):
        out = corrupt(grey, "impulse_noise", severity, seed=severity)
        salt, pepper = (out == 1).float().mean().item(), (out == 0).float().mean().item()
        assert abs((salt + pepper) / amount - 1) < 0.1 and abs(salt / pepper - 1) < 0.25
        assert ((out == 0.5) | (out == 0) | (out == 1)).all()


def test_brightness_adds_to_hsv_value_as_colorsys_does():
    rgb = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    rgb[0, :, 0, 0] = 0.0  # black: hue and saturation undefined, becomes grey
    for severity, c in enumerate(C.BRIGHTNESS, start=1):
        out = corrupt(rgb, "brightness", severity)
        for i, j in [(0, 0), (1, 2), (3, 3), (2, 1)]:
            h, s, v = colorsys.rgb_to_hsv(*rgb[0, :, i, j].tolist())
            expected = colorsys.hsv_to_rgb(h, s, min(v + c, 1.0))
            assert torch.allclose(out[0, :, i, j], torch.tensor(expected), atol=1e-6)


def test_contrast_scales_the_deviation_from_each_channel_mean():
    x = torch.full((1, 3, 8, 8), 0.3)
    x[..., :4] = 0.7  # half the columns bright: mean 0.5 in every channel
    for severity, c in enumerate(C.CONTRAST, start=1):
        out = corrupt(x, "contrast", severity)
        assert torch.allclose(out[..., :4], torch.tensor(0.5 + 0.2 * c))
        assert torch.allclose(out[..., 4:], torch.tensor(0.5 - 0.2 * c))
    constant = torch.full((2, 3, 8, 8), 0.42)
    assert torch.allclose(corrupt(constant, "contrast", 5), constant)


@pytest.mark.parametrize("name", ["pixelate", "defocus_blur", "zoom_blur", "motion_blur",
                                  "glass_blur", "elastic_transform"])
def test_spatial_corruptions_leave_a_constant_image_unchanged(name):
    constant = torch.full((3, 3, 32, 32), 0.42)
    for severity in C.SEVERITIES:
        assert torch.allclose(corrupt(constant, name, severity), constant, atol=1e-6)


def test_pixelate_matches_pil_box_resize_down_and_up():
    plane = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    x = torch.from_numpy(plane).expand(1, 3, 32, 32)
    for severity, c in enumerate(C.PIXELATE, start=1):
        small = Image.fromarray(plane, mode="F").resize((int(32 * c),) * 2, Image.BOX)
        expected = np.asarray(small.resize((32, 32), Image.BOX))
        assert np.abs(corrupt(x, "pixelate", severity)[0, 0].numpy() - expected).max() < 1e-6


def test_defocus_blur_at_severity_five_is_a_three_by_three_box():
    x = natural_batch(2)
    box = F.avg_pool2d(x, 3, stride=1)
    assert torch.allclose(corrupt(x, "defocus_blur", 5)[..., 1:-1, 1:-1], box, atol=1e-6)


def imagemagick_motion_blur(image: np.ndarray, radius: float, sigma: float, angle: float):
    """MotionBlurImage from ImageMagick's effect.c, pixel by pixel, edge virtual pixels."""
    width = 2 * math.ceil(radius) + 1
    k = np.exp(-np.arange(width) ** 2 / (2 * sigma**2))
    k /= k.sum()
    px, py = width * math.sin(math.radians(angle)), width * math.cos(math.radians(angle))
    norm = math.hypot(px, py)
    offsets = [(math.ceil(i * py / norm - 0.5), math.ceil(i * px / norm - 0.5))
               for i in range(width)]
    _, h, w = image.shape
    out = np.zeros_like(image)
    for y in range(h):
        for x in range(w):
            for weight, (ox, oy) in zip(k, offsets, strict=True):
                out[:, y, x] += weight * image[:, min(max(y + oy, 0), h - 1),
                                               min(max(x + ox, 0), w - 1)]
    return out


def test_motion_blur_matches_imagemagicks_loop():
    image = np.random.default_rng(1).random((2, 3, 12, 12))
    angles = (-31.7, 41.0)  # away from exact half-pixel ties, decided by rounding in C
    for radius, sigma in (C.MOTION_BLUR[0], C.MOTION_BLUR[4]):
        out = image_filters.motion_blur(torch.from_numpy(image), radius, sigma, torch.tensor(angles))
        for i, angle in enumerate(angles):
            expected = imagemagick_motion_blur(image[i], radius, sigma, angle)
            assert np.abs(out[i].numpy() - expected).max() < 1e-12


def test_motion_blur_at_angle_zero_streaks_a_dot_to_the_left_with_half_gaussian_weights():
    dot = torch.zeros(1, 3, 32, 32, dtype=torch.float64)
    dot[..., 16, 20] = 1.0
    out = image_filters.motion_blur(dot, 6, 2.0, torch.tensor([0.0]))[0, 0]
    weights = torch.exp(-torch.arange(13.0, dtype=torch.float64) ** 2 / 8)
    assert torch.allclose(out[16, 8:21].flip(0), weights / weights.sum())
    assert out.sum() == pytest.approx(1.0) and out[16, 8:21].sum() == pytest.approx(1.0)


def test_zoom_blur_and_gaussian_filter_match_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(2)
    for side in (32, 66):  # 66 takes the per-zoom path for images above 64x64
        image = rng.random((side, side, 3))
        for severity in (1, 5):
            zooms = C.ZOOM_BLUR[severity - 1]
            total = image.copy()
            for z in zooms:  # the original's clipped_zoom
                crop = int(np.ceil(side / z))
                top = (side - crop) // 2
                big = ndimage.zoom(image[top:top + crop, top:top + crop], (z, z, 1), order=1)
                trim = (big.shape[0] - side) // 2
                total += big[trim:trim + side, trim:trim + side]
            x = torch.from_numpy(image).permute(2, 0, 1)[None]
            out = corrupt(x, "zoom_blur", severity)[0].permute(1, 2, 0).numpy()
            assert np.abs(out - total / (len(zooms) + 1)).max() < 1e-5
    planes = rng.random((2, 3, 32, 32))
    for sigma, mode, truncate in [(0.4, "nearest", 4.0), (6.4, "reflect", 3.0)]:
        expected = ndimage.gaussian_filter(planes, (0, 0, sigma, sigma), mode=mode,
                                           truncate=truncate)
        out = image_filters.gaussian_blur(torch.from_numpy(planes), sigma, mode, truncate)
        assert np.abs(out.numpy() - expected).max() < 1e-12


def original_plasma_fractal(mapsize: int, wibbledecay: float, uniform) -> np.ndarray:
    """make_cifar_c.py's plasma_fractal with its np.random.uniform passed in."""
    maparray = np.zeros((mapsize, mapsize))
    stepsize, wibble = mapsize, 100.0
    while stepsize >= 2:
        half = stepsize // 2
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[half::stepsize, half::stepsize] = (
            squareaccum / 4 + wibble * uniform(-wibble, wibble, squareaccum.shape))
        drgrid = maparray[half::stepsize, half::stepsize]
        ulgrid = maparray[0::stepsize, 0::stepsize]
        ltsum = drgrid + np.roll(drgrid, 1, axis=0) + ulgrid + np.roll(ulgrid, -1, axis=1)
        maparray[0::stepsize, half::stepsize] = (
            ltsum / 4 + wibble * uniform(-wibble, wibble, ltsum.shape))
        ttsum = drgrid + np.roll(drgrid, 1, axis=1) + ulgrid + np.roll(ulgrid, -1, axis=0)
        maparray[half::stepsize, 0::stepsize] = (
            ttsum / 4 + wibble * uniform(-wibble, wibble, ttsum.shape))
        stepsize, wibble = half, wibble / wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def test_fog_plasma_is_the_originals_diamond_square_and_fog_formula_holds():
    g = torch.Generator().manual_seed(3)

    def uniform(low, high, shape):
        return low + (high - low) * torch.rand((1, *shape), generator=g, dtype=torch.float64)[0]

    expected = original_plasma_fractal(32, 2.5, lambda *a: uniform(*a).numpy())
    ours = image_filters.plasma_fractal(1, 32, 2.5, torch.Generator().manual_seed(3))[0]
    assert np.abs(ours.numpy() - expected).max() < 1e-12
    colour = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1)
    top = 0.6  # the image's maximum over all channels scales every channel
    for severity, (c, _) in enumerate(C.FOG, start=1):
        out = corrupt(colour.expand(2, 3, 32, 32), "fog", severity)
        low, high = out.amin((0, 2, 3)), out.amax((0, 2, 3))
        assert torch.allclose(low, colour.flatten() * top / (top + c), atol=1e-6)
        assert torch.allclose(high, (colour.flatten() + c) * top / (top + c), atol=1e-6)


def test_snow_brightens_the_background_and_adds_flakes():
    black = torch.zeros(4, 3, 32, 32)
    for severity, params in enumerate(C.SNOW, start=1):
        out = corrupt(black, "snow", severity, seed=1)
        background = (1 - params[-1]) * 0.5
        assert out.min().item() == pytest.approx(background, abs=1e-6)
        assert (out > background + 0.05).any()
        assert torch.allclose(out, out.flip(-2, -1))  # flakes are added once rotated by 180°


def test_jpeg_is_pils_codec_at_the_papers_quality():
    x = natural_batch(2)
    out = corrupt(x, "jpeg_compression", 2)
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-4)
    array = (x[1] * 255).round().byte().permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=C.JPEG_QUALITY[1])
    expected = torch.from_numpy(np.array(Image.open(buffer))).permute(2, 0, 1) / 255
    assert torch.equal(out[1], expected)


@pytest.mark.parametrize("severity", [0, 6, 2.5, True, "3", None])
def test_severity_outside_one_to_five_is_a_clear_error(images, severity):
    with pytest.raises(SoupvizError, match="severity"):
        corrupt(images, "fog", severity)


def test_unknown_name_group_and_bad_images_are_clear_errors(images):
    with pytest.raises(SoupvizError, match="'frost'.*gaussian_noise"):
        corrupt(images, "frost", 1)
    with pytest.raises(SoupvizError, match="group 'sky'"):
        corruption_names("sky")
    for bad in (images[:, :1], images[0], (images * 255).byte(), images.numpy()):
        with pytest.raises(SoupvizError, match=r"float \(N, 3, H, W\)"):
            corrupt(bad, "fog", 1)


def test_empty_batch_and_numpy_integer_severity_are_accepted(images):
    assert corrupt(images[:0], "snow", 2).shape == (0, 3, 32, 32)
    assert torch.equal(corrupt(images, "contrast", np.int64(2)), corrupt(images, "contrast", 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ALL)
def test_results_do_not_depend_on_the_device(images, name):
    on_gpu = corrupt(images.cuda(), name, 4, seed=2)
    assert on_gpu.is_cuda
    tolerance = 1.5 / 255 if name == "jpeg_compression" else 1e-4  # 8-bit rounding may flip
    assert torch.allclose(on_gpu.cpu(), corrupt(images, name, 4, seed=2), atol=tolerance)

"""Specification of soupviz.insight.saliency: map shapes and determinism, what each method is the
gradient of, display normalisation, per-ingredient panels and uploaded pictures."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from captum.attr import Saliency
from PIL import Image

from soupviz.errors import SoupvizError
from soupviz.insight.saliency import (
    METHODS,
    SaliencySettings,
    explain,
    load_uploaded_image,
    normalize_map,
    soup_panel,
)
from soupviz.soups.soup import Soup


@pytest.fixture
def soup(family) -> Soup:
    return Soup.from_family(family)


@pytest.fixture
def batch(synthetic_images) -> tuple[torch.Tensor, torch.Tensor]:
    return synthetic_images.floats()[:2], synthetic_images.labels[:2]


def fast(method: str, **kw) -> SaliencySettings:
    return SaliencySettings(method, nt_samples=4, ig_steps=8, **kw)


@pytest.mark.parametrize("method", METHODS)
def test_maps_have_the_image_shape_and_are_deterministic(soup, batch, method):
    x, y = batch
    model = soup.folded([0.25] * 4)
    first = explain(model, x, y, fast(method))
    again = explain(model, x, y, fast(method))
    signed = explain(model, x, y, fast(method, mode="signed"))
    for one, two, three in zip(first, again, signed, strict=True):
        assert one.map.shape == (3, 32, 32)
        assert one.display.shape == (32, 32) and three.display.shape == (3, 32, 32)
        assert torch.equal(one.map, two.map) and torch.equal(one.display, two.display)
        assert 0 <= one.display.min() and one.display.max() <= 1
        assert one.map.abs().sum() > 0


def test_smoothgrad_noise_follows_its_seed(soup, batch):
    x, y = batch
    model = soup.folded([0.25] * 4)
    a = explain(model, x, y, fast("smoothgrad", seed=1))[0].map
    b = explain(model, x, y, fast("smoothgrad", seed=2))[0].map
    assert not torch.equal(a, b)


def test_loss_gradient_is_the_cross_entropy_gradient_on_the_true_label(soup, batch):
    # dCE/dx = sum_j (p_j - [j == y]) dz_j/dx, with dz_j/dx from Captum's Saliency (signed)
    x, y = batch[0][:1], batch[1][:1]
    model = soup.folded([0.4, 0.3, 0.2, 0.1])
    loss_map = explain(model, x, y, fast("loss"))[0].map
    probabilities = model(x).softmax(1)[0].detach()
    expected = torch.zeros_like(x[0])
    for j in range(10):
        logit_gradient = Saliency(model).attribute(
            x.clone().requires_grad_(True), target=j, abs=False
        )
        expected += (probabilities[j] - float(j == int(y))) * logit_gradient[0]
    assert torch.allclose(loss_map, expected, atol=1e-7, rtol=1e-4)
    saliency_map = explain(model, x, y, fast("saliency"))[0].map
    true_logit = Saliency(model).attribute(x.clone().requires_grad_(True), target=int(y), abs=False)
    assert torch.allclose(saliency_map, true_logit[0])


def test_integrated_gradients_add_up_to_the_logit_change_from_black(soup, batch):
    x, y = batch[0][:1], batch[1][:1]
    model = soup.folded([1.0, 0.0, 0.0, 0.0])
    ig = explain(model, x, y, SaliencySettings("integrated_gradients", ig_steps=64))[0].map
    with torch.no_grad():
        change = model(x)[0, y] - model(torch.zeros_like(x))[0, y]
    assert ig.sum() == pytest.approx(float(change), rel=0.05, abs=1e-4)


def test_prediction_and_confidence_are_the_softmax_of_the_model(soup, batch):
    x, y = batch
    model = soup.folded([0.0, 1.0, 0.0, 0.0])
    results = explain(model, x, y, fast("loss"))
    with torch.no_grad():
        p = model(x).softmax(1)
    for i, result in enumerate(results):
        assert result.prediction == int(p[i].argmax())
        assert result.confidence == pytest.approx(float(p[i].max()))
        assert result.true_probability == pytest.approx(float(p[i, y[i]]))
        assert result.label == int(y[i]) and "Tsipras" in result.method
        assert "percentile" in result.normalisation


def test_normalize_map_by_hand():
    raw = torch.zeros(3, 2, 2)
    raw[0, 0, 0], raw[1, 0, 1], raw[2, 1, 0] = 4.0, -2.0, 1.0
    shown = normalize_map(raw, "abs", percentile=100)
    assert torch.allclose(shown, torch.tensor([[1.0, 0.5], [0.25, 0.0]]))
    signed = normalize_map(raw, "signed", percentile=100)
    assert signed[0, 0, 0] == 1.0 and signed[1, 0, 1] == 0.25 and signed[0, 1, 1] == 0.5
    minmax = normalize_map(raw, "signed", clip="minmax")
    assert minmax[0, 0, 0] == 1.0 and minmax[1, 0, 1] == 0.0
    clipped = normalize_map(torch.tensor([[[0.0, 0.0, 0.0, 100.0]]]), "abs", clip="std", stds=1.0)
    assert clipped.max() == 1.0 and clipped[0, 0] == 0.0
    assert torch.equal(normalize_map(torch.zeros(3, 4, 4), "abs"), torch.zeros(4, 4))
    assert torch.equal(normalize_map(torch.zeros(3, 4, 4), "signed"), torch.full((3, 4, 4), 0.5))


def test_paper_std_clipping_puts_the_mean_at_the_middle():
    raw = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0))
    shown = normalize_map(raw, "signed", clip="std", stds=3.0)
    middle = (raw - raw.mean()).abs().argmin()
    assert shown.flatten()[middle] == pytest.approx(0.5, abs=0.01)
    assert 0 <= shown.min() and shown.max() <= 1


def test_unknown_settings_are_clear_errors():
    with pytest.raises(SoupvizError, match="method"):
        SaliencySettings("gradcam")
    with pytest.raises(SoupvizError, match="percentile"):
        SaliencySettings(percentile=0)


def test_panel_shows_each_ingredient_and_the_soup_without_changing_it(soup, family, batch):
    x, y = batch
    before = soup.weights
    panel = soup_panel(soup, x[0], int(y[0]), [0.5, 0.5, 0.0, 0.0], fast("loss"))
    assert list(panel) == family.names + ["soup"]
    assert torch.equal(soup.weights, before)
    alone = explain(family.ingredients[2].build_model(), x[:1], y[:1], fast("loss"))[0]
    assert torch.allclose(panel[family.names[2]].map, alone.map, atol=1e-6)
    assert panel[family.names[2]].prediction == alone.prediction


def png_bytes(width: int, height: int) -> bytes:
    """A picture whose middle square is green and whose side bands are red."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[..., 0] = 255
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    array[top : top + side, left : left + side] = (0, 255, 0)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_is_centre_cropped_and_resized():
    image = load_uploaded_image(png_bytes(80, 40))
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert torch.allclose(image[1], torch.ones(32, 32)) and image[0].max() == 0
    file = io.BytesIO(png_bytes(40, 64))
    file.name = "photo.png"
    file.read()  # a widget may have read it already
    assert load_uploaded_image(file, size=16).shape == (3, 16, 16)


def test_uploads_that_are_not_images_are_clear_errors(tmp_path):
    with pytest.raises(SoupvizError, match="not an image"):
        load_uploaded_image(b"this is a text file, not a picture")
    named = io.BytesIO(b"%PDF-1.4 not an image")
    named.name = "report.pdf"
    with pytest.raises(SoupvizError, match="report.pdf") as error:
        load_uploaded_image(named)
    assert str(error.value) == "The file report.pdf is not an image that can be read; upload a PNG or JPEG picture."
    with pytest.raises(SoupvizError, match="empty"):
        load_uploaded_image(b"")
    with pytest.raises(SoupvizError, match="does not exist"):
        load_uploaded_image(tmp_path / "missing.png")


def test_upload_feeds_the_model(soup):
    image = load_uploaded_image(png_bytes(50, 50))
    result = explain(soup.folded([0.25] * 4), image, 3, fast("loss"))[0]
    assert result.map.shape == (3, 32, 32) and 0 <= result.prediction < 10

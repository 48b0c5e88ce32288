"""Specifications of soupviz/serve/insight_runs.py (named apart from tests/app/test_insight_pages.py, as
test modules share one namespace): the result store, request keys, picking images, reading
per-class Gaussian fits (few-shot runs: tests/unit/insight/test_adapt.py; uploaded archives:
tests/unit/insight/test_shifts.py)."""

from __future__ import annotations

import pytest
import torch

from soupviz.data import CIFAR10_CLASSES, ImageSet
from soupviz.errors import SoupvizError
from soupviz.insight.generate import GenerationSettings, fit_class_gaussians, towards_class
from soupviz.serve.insight_runs import (
    ResultStore,
    class_positions,
    comparison_rows,
    fit_gaussians,
    parse_indices,
    request_key,
    tensor_digest,
    walk_towards,
)
from soupviz.soups.soup import Soup


def test_the_store_forgets_the_least_recently_used_result() -> None:
    store = ResultStore(max_entries=2)
    store.put("a", 1)
    store.put("b", 2)
    assert store.get("a") == 1  # now "b" is the oldest
    store.put("c", 3)
    assert store.get("b") is None and store.get("a") == 1 and store.get("c") == 3 and len(store) == 2


def test_request_keys_and_digests_change_with_their_inputs() -> None:
    x = torch.zeros(2, 3)
    assert request_key("a", 1, (0.5, 0.5)) == request_key("a", 1, (0.5, 0.5)) != request_key("a", 1, (0.5, 0.6))
    assert tensor_digest(x) != tensor_digest(x.reshape(3, 2)) and tensor_digest(x) != tensor_digest(x + 1)


def test_comparison_rows_are_each_ingredient_then_the_current_soup() -> None:
    rows = comparison_rows(3, [0.2, 0.3, 0.5])
    assert rows.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.2, 0.3, 0.5]]


def test_parse_indices_reads_commas_and_spaces_once_each() -> None:
    assert parse_indices("3, 17 42,3", 100) == [3, 17, 42]


@pytest.mark.parametrize(("text", "message"), [("3, x", "'x' is not a whole number from 0 to 99"),
                                              ("100", "'100' is not a whole number"), ("-1", "'-1'"),
                                              ("", "No image index"), (" ".join(map(str, range(13))), "at most 12")])
def test_parse_indices_explains_bad_text(text: str, message: str) -> None:
    with pytest.raises(SoupvizError, match=message):
        parse_indices(text, 100)


def test_class_positions_take_the_images_at_an_offset_in_split_order() -> None:
    labels = torch.tensor([0, 1, 0, 1, 0])
    assert class_positions(labels, [0, 1], 1, 1, ["a", "b"]) == [2, 3]
    with pytest.raises(SoupvizError, match="2 images of class 'b', so there is no image number 2"):
        class_positions(labels, [1], 2, 1, ["a", "b"])


def test_fitting_class_by_class_gives_the_joint_fit_and_keeps_each_class(
    synthetic_images: ImageSet, monkeypatch: pytest.MonkeyPatch,
) -> None:
    images = ImageSet(synthetic_images.images[:, :, :4, :4], synthetic_images.labels, CIFAR10_CLASSES, "tiny")
    store, reports = ResultStore(), []
    merged = fit_gaussians(images, [2, 5], max_per_class=4, seed=1, store=store, key="k",
                           report=lambda now: reports.append(now.fraction))
    joint = fit_class_gaussians(images, 4, [2, 5], seed=1)
    assert merged.fitted == (2, 5) and merged.counts == joint.counts
    torch.testing.assert_close(merged.means, joint.means)
    torch.testing.assert_close(merged.factors, joint.factors)
    assert len(store) == 2 and reports[-1] == 1.0
    fitted = []
    monkeypatch.setattr("soupviz.serve.insight_runs.fit_class_gaussians",
                        lambda *args, **kw: fitted.append(args[2]) or fit_class_gaussians(*args, **kw))
    fit_gaussians(images, [5, 7], 4, 1, store, key="k")
    assert fitted == [[7]]  # class 5 came from the store


def test_walking_each_model_is_towards_class_on_its_folded_soup(family, synthetic_images: ImageSet) -> None:
    soup, image = Soup.from_family(family), synthetic_images.floats()[0]
    rows = comparison_rows(4, [0.5, 0.5, 0.0, 0.0])
    settings = GenerationSettings(steps=2, frame_every=1)
    runs = walk_towards(soup, rows, image, 3, settings)
    alone = towards_class(soup.folded(rows[3]), image[None], 3, settings)
    assert len(runs) == 5 and runs[3].frame_steps == [0, 1, 2]
    torch.testing.assert_close(runs[3].final, alone.final)

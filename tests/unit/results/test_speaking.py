"""One record speaks for a soup and a quantity: the strongest attack's, then the one on more images;
a preview only while nothing stronger exists; records of different quantities are never compared."""

from __future__ import annotations

from pathlib import Path

import pytest

from soupviz.present.labels import measured_by, tile_caption
from soupviz.results.grids import stored_records
from soupviz.results.metric_specs import MetricSpec
from soupviz.results.speaking import (
    AUTOATTACK_STAGES,
    DEFAULT_CHAIN,
    PREVIEW,
    REFERENCE,
    UNMEASURED,
    is_preview,
    speaking_record,
    strength_rank,
)
from soupviz.results.store import ResultStore, family_fingerprint, record_key
from tests.unit.present.test_soup_figures import measured, record

UNIFORM = [0.25, 0.25, 0.25, 0.25]
HASHES = ["a", "b", "c", "d"]
PREVIEW_L1 = measured("l1::pgd:10")
AUTOATTACK_L1 = measured("l1::autoattack-apgd")
APGD_L1 = measured("l1::apgd-ce:100")
PREVIEW_L1_6 = measured("l1:6:pgd:10")


@pytest.mark.parametrize(("text", "rank"), [
    ("clean", REFERENCE), ("l1::autoattack", REFERENCE), ("l1::autoattack-apgd", AUTOATTACK_STAGES),
    ("linf::default", DEFAULT_CHAIN), ("linf::pgd+pgd-t:10:t3", DEFAULT_CHAIN), ("l1::default", AUTOATTACK_STAGES),
    ("linf::apgd-ce:40", UNMEASURED), ("l2::pgd:10", PREVIEW), ("union:linf+l2:default", DEFAULT_CHAIN),
])
def test_attacks_rank_by_the_strength_table(text: str, rank: int) -> None:
    assert strength_rank(MetricSpec.parse(text)) == rank


def test_the_strongest_attack_speaks_whatever_the_image_count() -> None:
    preview = record(UNIFORM, PREVIEW_L1, correct=180, n=500)
    autoattack = record(UNIFORM, AUTOATTACK_L1, correct=25, n=100)
    assert speaking_record([preview, autoattack, None]) is autoattack
    assert speaking_record([autoattack, preview]) is autoattack
    assert speaking_record([None]) is None


def test_a_preview_speaks_only_while_nothing_stronger_exists_and_says_so() -> None:
    preview = record(UNIFORM, PREVIEW_L1, correct=36, n=200)
    assert speaking_record([preview]) is preview and is_preview(preview)
    assert "(preview)" in measured_by(preview) and "n=200" in measured_by(preview)
    stronger = record(UNIFORM, APGD_L1, correct=30, n=50)
    assert speaking_record([preview, stronger]) is stronger and not is_preview(stronger)


def test_of_one_attack_the_record_on_more_images_speaks() -> None:
    few, many = record(UNIFORM, AUTOATTACK_L1, n=100), record(UNIFORM, AUTOATTACK_L1, n=500, correct=125)
    assert speaking_record([few, many]) is many


def test_records_of_different_budgets_are_never_compared() -> None:
    with pytest.raises(ValueError, match="different quantities"):
        speaking_record([record(UNIFORM, PREVIEW_L1), record(UNIFORM, PREVIEW_L1_6)])


def test_a_tile_names_the_attack_n_and_the_store_on_its_face() -> None:
    autoattack = record(UNIFORM, AUTOATTACK_L1, correct=125, n=500)
    assert tile_caption(autoattack, stored=True).startswith(
        "by AutoAttack (standard: APGD-CE, APGD-T) · n=500 · stored · 95% CI [")
    assert tile_caption(record(UNIFORM)).startswith("n=100 · 95% CI")


def test_the_store_answers_with_the_strongest_record_of_the_soup_at_the_specs_threat_and_budget(
        tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    chosen = record(UNIFORM, AUTOATTACK_L1, correct=125, n=500)
    others = [record(UNIFORM, PREVIEW_L1, correct=174, n=500), record(UNIFORM, PREVIEW_L1_6, correct=300, n=500),
              record([1, 0, 0, 0], AUTOATTACK_L1, correct=1, n=500)]
    for index, one in enumerate([*others, chosen]):
        store.put(record_key(index=index), one, family=family_fingerprint(HASHES), hashes=HASHES)
    found = stored_records(store, HASHES, UNIFORM, [PREVIEW_L1[1], PREVIEW_L1_6[1]])
    assert found[PREVIEW_L1[0]].accuracy == chosen.accuracy and found[PREVIEW_L1[0]].spec == AUTOATTACK_L1[0]
    assert found[PREVIEW_L1_6[0]].spec == PREVIEW_L1_6[0]

"""The command line of the merge lab: `soupviz eval` with --merge/--lambdas, --groups and transfer
metrics, and `soupviz sweep --merge`, on a tiny family and image folder."""

from __future__ import annotations

import pytest

from soupviz.cli import main
from soupviz.results.store import read_records


def run(family_folder, data_folder, tmp_path, *extra: str) -> list:
    out = tmp_path / "out.json"
    code = main(["eval", str(family_folder), "--data", str(data_folder), "--images", "12", "--no-cache",
                 "--out", str(out), *extra])
    assert code == 0
    return read_records(out)[0]


def test_eval_ties_with_lambdas_measures_the_merge(family_folder, data_folder, tmp_path, capsys):
    records = run(family_folder, data_folder, tmp_path, "--metrics", "clean", "--merge", "ties",
                  "--lambdas", "0.5,0.5,0.5", "--lambdas", "1,0,0", "--top-k", "0.3")
    assert [r.weights for r in records] == [[0.5, -0.5, 0.5, 0.5], [1.0, 0.0, 0.0, 0.0]]
    assert all(r.method.startswith("TIES merge (top 30% of each task vector") for r in records)
    assert all(r.family.endswith("/merges/ties-k0.3-test-linf") for r in records)


def test_eval_merge_defaults_to_lambda_one_around_the_lineage_base(family_folder, data_folder, tmp_path):
    records = run(family_folder, data_folder, tmp_path, "--metrics", "clean", "--merge", "dare", "--drop", "0.5")
    assert [r.weights for r in records] == [[1.0, -2.0, 1.0, 1.0]]
    assert "DARE merge (drop p=0.5" in records[0].method


def test_eval_groups_swaps_a_group_in_each_ingredient(family_folder, data_folder, tmp_path):
    records = run(family_folder, data_folder, tmp_path, "--metrics", "clean", "--groups", "layer2=test-l2")
    assert len(records) == 4 and all("layer-wise soup (layer2 (0, 0, 1, 0))" in r.method for r in records)


def test_eval_transfer_metric_names_its_source(family_folder, data_folder, tmp_path):
    records = run(family_folder, data_folder, tmp_path, "--metrics", "linf:8/255:pgd:2@test-linf",
                  "--weights", "0.25,0.25,0.25,0.25")
    assert records[0].measure.source == "test-linf"
    assert records[0].method == "PGD-2 transferred from the test-linf ingredient, L∞ 8/255"


@pytest.mark.parametrize("extra, message", [
    (["--lambdas", "1,1,1"], "--lambdas gives the task-vector coefficients"),
    (["--merge", "ties", "--compare", "test-linf,test-l2"], "drop --merge and --groups"),
    (["--merge", "ties", "--base", "resnet"], "not an ingredient"),
    (["--groups", "layer9=test-l2"], "No block group 'layer9'"),
])
def test_eval_refuses_merge_options_it_cannot_honour(family_folder, data_folder, tmp_path, capsys, extra, message):
    code = main(["eval", str(family_folder), "--data", str(data_folder), "--images", "4", "--no-cache",
                 "--metrics", "clean", *extra])
    assert code != 0 and message in capsys.readouterr().err


def test_sweep_merge_stores_the_merge_on_the_grid(family_folder, data_folder, tmp_path):
    out = tmp_path / "sweep.json"
    code = main(["sweep", str(family_folder), "--data", str(data_folder), "--images", "8", "--step", "1",
                 "--metrics", "clean", "--merge", "ties", "--store", str(tmp_path / "s.sqlite"), "--out", str(out)])
    assert code == 0
    records = read_records(out)[0]
    assert len(records) == 4 and all(r.method.startswith("TIES merge") for r in records)


def test_eval_swaps_stores_the_layer_swap_matrix(family_folder, data_folder, tmp_path, capsys):
    from soupviz.checkpoints.families import load_family
    from soupviz.evaluate.layer_swaps import stored_swaps
    from soupviz.results.store import ResultStore

    store = tmp_path / "s.sqlite"
    code = main(["eval", str(family_folder), "--data", str(data_folder), "--images", "8", "--metrics", "clean",
                 "--swaps", "--store", str(store)])
    assert code == 0
    family = load_family(family_folder)
    swaps = stored_swaps(ResultStore(store), family)
    assert len(swaps.swaps) == 12 and set(swaps.base_records) == {"clean"}
    assert all(set(records) == {"clean"} for records in swaps.swap_records.values())
    assert family.names[swaps.base] == "test-linf" and swaps.images.startswith("8 images")
    out = capsys.readouterr().out
    assert "/merges/layers-stem=test-none" in out and "/merges/layers-head=test-l1" in out

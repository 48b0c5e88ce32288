"""Attacks: budgets, seeds, targeting, restarts, robust_mask, model modes, wrappers, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
from torch import nn

from soupviz.attacks import (
    APGD,
    PGD,
    THREATS,
    AutoAttack,
    attack_names,
    describe_attacks,
    make_attack,
    make_attacks,
    robust_mask,
)
from soupviz.attacks.losses import attack_loss
from soupviz.errors import SoupvizError

EPS = {"linf": 0.1, "l2": 0.5, "l1": 2.0}


def tiny_model(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.Tanh(), nn.Linear(16, 10))


@pytest.fixture
def model() -> nn.Module:
    return tiny_model()


@pytest.fixture
def batch(model) -> tuple[torch.Tensor, torch.Tensor]:
    """32 images (3, 4, 4) labelled with the model's own prediction, so all start correct."""
    x = torch.rand(32, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return x, model(x).argmax(1)


class Spy(nn.Module):
    """Wraps a model and records every batch it sees and whether it was in training mode."""

    def __init__(self, inner: nn.Module, fixed: bool = False) -> None:
        super().__init__()
        self.inner, self.seen, self.modes = inner, [], []
        if fixed:
            self.fixed_batch = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        self.modes.append(self.training)
        return self.inner(x)


def norm(threat: str, delta: torch.Tensor) -> torch.Tensor:
    flat = delta.flatten(1)
    return {"linf": flat.abs().amax(1), "l2": flat.norm(dim=1), "l1": flat.abs().sum(1)}[threat]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("name", ["pgd", "pgd-dlr", "pgd-t", "apgd-ce", "apgd-dlr", "apgd-t"])
@pytest.mark.parametrize("threat", THREATS)
def test_attacks_stay_in_budget_and_box_and_break_points(model, batch, threat, name):
    x, y = batch
    x_adv = make_attack(name, model, threat, EPS[threat], steps=10)(x, y)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (norm(threat, x_adv - x) <= EPS[threat] * (1 + 1e-4)).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(model, x_adv, y) < 0.8


@pytest.mark.parametrize("threat", THREATS)
def test_pgd_is_deterministic_under_its_seed(model, batch, threat):
    x, y = batch
    first = PGD(model, threat, EPS[threat] / 4, steps=3, seed=7)(x, y)
    assert torch.equal(first, PGD(model, threat, EPS[threat] / 4, steps=3, seed=7)(x, y))
    assert not torch.equal(first, PGD(model, threat, EPS[threat] / 4, steps=3, seed=8)(x, y))


@pytest.mark.parametrize("threat", THREATS)
def test_apgd_is_deterministic_and_leaves_the_global_generator_alone(model, batch, threat):
    x, y = batch
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = APGD(model, threat, EPS[threat] / 4, steps=5, seed=3)(x, y)
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(first, APGD(model, threat, EPS[threat] / 4, steps=5, seed=3)(x, y))


@pytest.mark.parametrize("threat", THREATS)
def test_apgd_wrapper_returns_what_pyautoattack_returns(model, batch, threat):
    x, y = batch
    eps, norm_name = EPS[threat] / 4, {"linf": "Linf", "l2": "L2", "l1": "L1"}[threat]
    large = threat == "l1"  # AutoAttack's L1 setting, our default there
    ours = APGD(model, threat, eps, steps=5, seed=2)(x, y)
    torch.manual_seed(0)
    theirs = APGDAttack(model, n_iter=5, norm=norm_name, eps=eps, seed=2, use_largereps=large).perturb(x, y)
    torch.testing.assert_close(ours, theirs)
    ours_t = APGD(model, threat, eps, steps=5, targeted=True, n_target_classes=3, seed=2)(x, y)
    theirs_t = APGDAttack_targeted(
        model, n_iter=5, norm=norm_name, eps=eps, seed=2, n_target_classes=3, use_largereps=large
    )
    torch.testing.assert_close(ours_t, theirs_t.perturb(x, y))


def test_apgd_uses_autoattacks_large_reps_at_l1_only(model, batch):
    assert APGD(model, "l1", 12.0).large_reps and not APGD(model, "l1", 12.0, large_reps=False).large_reps
    assert not APGD(model, "linf", 8 / 255).large_reps
    with pytest.raises(SoupvizError, match="L1 only"):
        APGD(model, "l2", 0.5, large_reps=True)


def test_autoattack_runs_only_the_stages_asked_for(model, batch):
    x, y = batch
    attack = AutoAttack(model, "linf", 2 / 255, stages=("apgd-ce", "apgd-t"))
    assert attack.describe() == "AutoAttack (standard: APGD-CE, APGD-T) L∞ 2/255"
    x_adv = attack(x, y)
    assert ((x_adv - x).abs() <= 2 / 255 + 1e-6).all()
    with pytest.raises(SoupvizError, match="stages"):
        AutoAttack(model, "linf", 2 / 255, stages=("apgd-x",))


def test_apgd_accepts_any_callable_and_channels_last_images(model, batch):
    x, y = batch
    x_last = x.to(memory_format=torch.channels_last)
    assert not x_last.is_contiguous()
    x_adv = APGD(lambda images: model(images), "l2", 0.5, steps=5)(x_last, y)
    assert (norm("l2", x_adv - x) <= 0.5 + 1e-5).all()


@pytest.mark.parametrize("loss", ["ce", "dlr"])
@pytest.mark.parametrize("threat", THREATS)
def test_targeted_pgd_pushes_towards_the_target(model, batch, threat, loss):
    """CE: the target's probability rises for every image; DLR: its logit gains on the true
    class's for every image. Either way a good share ends up classified as the target."""
    x, y = batch
    with torch.no_grad():
        target = model(x).argsort(1)[:, -3]  # the third most likely class
        before = model(x)
    x_adv = PGD(model, threat, EPS[threat], steps=10, loss=loss, early_stop=False)(x, y, target)
    with torch.no_grad():
        after = model(x_adv)
    if loss == "ce":
        rows = torch.arange(len(y))
        assert (after.softmax(1)[rows, target] > before.softmax(1)[rows, target]).all()
    else:
        gain = (after - before).gather(1, target[:, None]) - (after - before).gather(1, y[:, None])
        assert (gain > 0).all()
    assert (after.argmax(1) == target).float().mean() > 0.3


@pytest.mark.parametrize("threat", THREATS)
def test_pgd_t_tries_the_top_wrong_classes_in_turn_on_survivors_only(model, batch, threat):
    x, y = batch
    spy = Spy(model)
    attack = make_attack("pgd-t", spy, threat, EPS[threat] / 4, steps=3, n_target_classes=2)
    assert attack.describe().startswith("PGD-T-3 (2 targets)")
    x_adv = attack(x, y)
    broken = model(x_adv).argmax(1) != y
    one_target = make_attack("pgd-t", model, threat, EPS[threat] / 4, steps=3, n_target_classes=1)(x, y)
    assert broken.sum() >= (model(one_target).argmax(1) != y).sum()  # a second target only adds
    untouched = (x_adv == x).flatten(1).all(1)
    assert not (broken & untouched).any()
    survivors = int((model(one_target).argmax(1) == y).sum())
    assert 0 < survivors < len(x)
    assert any(len(seen) == survivors for seen in spy.seen)  # the second target attacks only these


def test_restarts_attack_only_unbroken_points(model, batch):
    x, y = batch
    spy = Spy(model)
    steps, eps = 4, 0.02
    attack = PGD(spy, "linf", eps, steps=steps, restarts=3, early_stop=False)
    attack(x, y)
    first, later = spy.seen[: steps + 1], spy.seen[steps + 1 :]
    assert all(len(batch_) == len(x) for batch_ in first)
    with torch.no_grad():
        broken = PGD(model, "linf", eps, steps=steps, early_stop=False)(x, y)
        broken_rows = (model(broken).argmax(1) != y).sum().item()
    assert 0 < broken_rows < len(x)
    assert later and len(later[0]) == len(x) - broken_rows
    assert all(len(b) <= len(later[0]) for b in later)


def test_early_stop_keeps_the_first_fooling_iterate_and_drops_it_from_the_batch(model, batch):
    x, y = batch
    spy = Spy(model)
    x_adv = PGD(spy, "linf", 0.1, steps=10)(x, y)
    sizes = [len(b) for b in spy.seen]
    assert sizes[0] == len(x) and sizes[-1] < len(x)
    assert accuracy(model, x_adv, y) < 0.5


def test_a_fixed_batch_model_always_sees_the_whole_batch_and_gets_the_same_answer(model, batch):
    x, y = batch
    spy = Spy(model, fixed=True)
    fixed = PGD(spy, "l1", 2.0, steps=5, restarts=2)(x, y)
    assert all(len(b) == len(x) for b in spy.seen)
    torch.testing.assert_close(fixed, PGD(model, "l1", 2.0, steps=5, restarts=2)(x, y))
    mask = robust_mask(PGD(spy, "linf", 0.05, steps=3), spy, x, y)
    assert all(len(b) == len(x) for b in spy.seen) and mask.dtype == torch.bool


def test_l1_steps_are_sparse_not_sign_steps(model, batch):
    x, y = batch
    x = x.clamp(0.2, 0.8)  # every coordinate can move
    attack = PGD(model, "l1", 1.0, steps=1, random_start=False, l1_sparsity=0.1, early_stop=False)
    moved = (attack(x, y) - x).flatten(1).ne(0).sum(1)
    assert (moved <= 5).all() and (moved >= 1).all()  # ceil(0.1 · 48) coordinates at most


def test_robust_mask_attacks_only_correct_points_then_only_survivors(model, batch):
    x, y = batch
    y = y.clone()
    y[:8] = (y[:8] + 1) % 10  # 8 clean-wrong points
    first, second = Spy(model), Spy(model)
    chain = [PGD(first, "linf", 0.03, steps=2, early_stop=False), PGD(second, "linf", 0.1, steps=2, early_stop=False)]
    mask = robust_mask(chain, model, x, y, batch_size=16)
    assert not mask[:8].any()
    assert sum(len(b) for b in first.seen[::3]) == 24  # 3 forwards per call; the first: correct points
    after_first = robust_mask(chain[0], model, x, y, batch_size=16)
    assert sum(len(b) for b in second.seen[::3]) == after_first.sum().item()
    assert (mask <= after_first).all()


def test_robust_mask_respects_the_model_passed_and_batches(model, batch):
    x, y = batch
    whole = robust_mask(PGD(model, "l2", 0.3, steps=5), model, x, y, batch_size=64)
    split = robust_mask(PGD(model, "l2", 0.3, steps=5), model, x, y, batch_size=7)
    assert whole.shape == (32,) and (whole.float().mean() - split.float().mean()).abs() <= 0.1


def test_model_modes_are_restored_exactly(batch):
    inner = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.BatchNorm1d(16), nn.Linear(16, 10))
    spy = Spy(inner)
    spy.train()
    inner[2].eval()  # a frozen BatchNorm inside a training model
    x, y = batch
    PGD(spy, "linf", 0.1, steps=2)(x, y)
    robust_mask(APGD(spy, "l2", 0.3, steps=2), spy, x, y)
    assert spy.training and inner.training and not inner[2].training
    assert not any(spy.modes)


def test_losses_match_pyautoattack(model, batch):
    x, y = batch
    logits = model(x).detach()
    target = (y + 1) % 10
    reference = APGDAttack_targeted(model, eps=0.1)
    reference.y_target = target
    torch.testing.assert_close(attack_loss("dlr", logits, y), reference.dlr_loss(logits, y))
    torch.testing.assert_close(attack_loss("dlr", logits, y, target), reference.dlr_loss_targeted(logits, y))
    torch.testing.assert_close(attack_loss("ce", logits, y), F.cross_entropy(logits, y, reduction="none"))


def test_labels_name_attack_iterations_and_budget(model):
    assert PGD(model, "linf", 8 / 255, steps=20).describe() == "PGD-20 L∞ 8/255"
    assert make_attack("pgd", model, "l2", 0.5, restarts=3).describe() == "PGD-20×3 L2 0.5"
    assert APGD(model, "linf", 8 / 255, steps=40).describe() == "APGD-CE-40 L∞ 8/255"
    assert APGD(model, "l1", 12, steps=40, loss="dlr").describe() == "APGD-DLR-40 L1 12"
    assert make_attack("apgd-t", model, "l2", 0.5).describe() == "APGD-T-40 (9 targets) L2 0.5"
    assert AutoAttack(model, "l2", 0.5).describe() == "AutoAttack (standard) L2 0.5"
    chain = make_attacks("apgd-ce+apgd-t", model, "linf", 8 / 255, steps=10)
    assert describe_attacks(chain) == "APGD-CE-10 + APGD-T-10 (9 targets) L∞ 8/255"
    mixed = [PGD(model, "linf", 8 / 255), PGD(model, "l1", 12)]
    assert describe_attacks(mixed) == "PGD-10 L∞ 8/255 + PGD-10 L1 12"


def test_registry_builds_every_name(model):
    for name in attack_names():
        assert make_attack(name, model, "linf", 8 / 255).threat == "linf"
    assert make_attack("APGD-CE", model, "l1", 12, steps=5, seed=4).seed == 4


def test_autoattack_standard_runs_quietly_and_is_seeded(model, batch):
    x, y = batch
    x, y = x[:6], y[:6]
    attack = AutoAttack(model, "linf", 0.5, seed=1)
    x_adv = attack(x, y)
    assert (x_adv - x).abs().max() <= 0.5 + 1e-6 and accuracy(model, x_adv, y) == 0
    assert torch.equal(x_adv, AutoAttack(model, "linf", 0.5, seed=1)(x, y))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda m: PGD(m, "l3", 0.1), "Unknown threat"),
        (lambda m: PGD(m, "linf", 0.0), "budget must be positive"),
        (lambda m: PGD(m, "linf", 0.1, steps=0), "at least one step"),
        (lambda m: PGD(m, "linf", 0.1, loss="hinge"), "Unknown PGD loss"),
        (lambda m: PGD(m, "l1", 1.0, l1_sparsity=2.0), "l1_sparsity"),
        (lambda m: APGD(m, "linf", 0.1, targeted=True, loss="ce"), "APGD-T uses 'dlr'"),
        (lambda m: APGD(Spy(m, fixed=True), "linf", 0.1), "fixed batch"),
        (lambda m: AutoAttack(m, "linf", 0.1, version="fast"), "Unknown AutoAttack version"),
        (lambda m: make_attack("fgsm", m, "linf", 0.1), "Unknown attack 'fgsm'"),
        (lambda m: make_attack("autoattack", m, "linf", 0.1, steps=10), "leave steps unset"),
        (lambda m: make_attack("apgd-ce", m, "linf", 0.1, momentum=0.9), "no option momentum"),
        (lambda m: PGD("not a model", "linf", 0.1), "must be callable"),
    ],
)
def test_bad_settings_raise_clear_errors(model, build, message):
    with pytest.raises(SoupvizError, match=message):
        build(model)


def test_dlr_needs_enough_classes(batch):
    x, y = batch
    binary = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    with pytest.raises(SoupvizError, match="at least 3 classes"):
        PGD(binary, "linf", 0.1, steps=1, loss="dlr")(x, y % 2)


def test_bad_inputs_raise_clear_errors(model, batch):
    x, y = batch
    attack = PGD(model, "linf", 0.1, steps=1)
    with pytest.raises(SoupvizError, match=r"\[0, 1\]"):
        attack(x * 255, y)
    with pytest.raises(SoupvizError, match="labels"):
        attack(x, y[:-1])
    with pytest.raises(SoupvizError, match="labels"):
        attack(x, y.float())
    with pytest.raises(SoupvizError, match="target classes"):
        attack(x, y, target=y[:3])
    with pytest.raises(SoupvizError, match="chooses its own target"):
        APGD(model, "linf", 0.1, steps=1)(x, y, target=y)
    assert attack(x[:0], y[:0]).shape == (0, 3, 4, 4)
    with pytest.raises(SoupvizError, match="on meta but the images are on cpu"):
        PGD(tiny_model().to("meta"), "linf", 0.1)(x, y)


@pytest.mark.parametrize("build", [
    lambda m: AutoAttack(m, "l1", 2.0, stages=("apgd-ce", "apgd-t")),  # the L1 default: large reps
    lambda m: AutoAttack(m, "linf", 0.01, stages=("apgd-ce", "fab-t")),
    lambda m: APGD(m, "l2", 0.1, steps=10, restarts=3),
])
def test_long_attacks_report_their_share_done_inside_one_batch_without_changing_it(model, batch, build):
    x, y = batch[0][:8], batch[1][:8]
    shares: list[float] = []
    x_adv = build(model)(x, y, progress=shares.append)
    assert torch.equal(x_adv, build(model)(x, y))
    assert len({s for s in shares if 0 < s < 1}) >= 2  # the share moves before the call ends
    assert shares == sorted(shares) and all(0 < s <= 1 for s in shares)


def test_robust_mask_reports_each_batch_and_attack_in_order(model, batch):
    x, y = batch
    shares: list[float] = []
    chain = [APGD(model, "l2", 0.1, steps=5, restarts=2), PGD(model, "l2", 0.1, steps=2)]
    mask = robust_mask(chain, model, x, y, batch_size=16, progress=shares.append)
    assert torch.equal(mask, robust_mask(chain, model, x, y, batch_size=16))
    assert shares == sorted(shares) and shares[-1] == 1.0
    assert {0.25, 0.5, 0.75, 1.0} <= set(shares)  # each attack of each of the 2 batches ends
    assert any(0 < s < 0.25 for s in shares)  # and APGD's restarts move it inside the first


@pytest.mark.parametrize("whole", [False, True])
def test_each_stage_attacks_only_the_survivors_and_none_runs_once_all_are_broken(whole) -> None:
    """`attack_survivors`: stage 'a' breaks points 0 and 2, stage 'b' point 1, then none is left."""
    from soupviz.attacks.robust import attack_survivors

    seen = []
    breaks = {"a": {0, 2}, "b": {1}, "c": {3}}

    def run(stage: str, rows: torch.Tensor) -> torch.Tensor:
        seen.append((stage, rows.tolist()))
        return torch.tensor([row not in breaks[stage] for row in rows.tolist()])

    alive = torch.tensor([True, True, True, False])
    assert attack_survivors(alive, "abc", run, whole).tolist() == [False, False, False, False]
    assert seen == ([("a", [0, 1, 2, 3]), ("b", [0, 1, 2, 3])] if whole else [("a", [0, 1, 2]), ("b", [1])])

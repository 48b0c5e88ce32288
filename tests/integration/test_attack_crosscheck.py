"""Cross-check: our PGD against pyautoattack's APGD-CE on a real, somewhat robust model.

The model is a tiny CNN fast-adversarially trained here on 4,000 real CIFAR-10 images, one
single-step attack per batch cycling through L∞, L2 and L1, so it has real robustness under
all three threats. On the same test images, at equal budget and iterations, our robust
accuracy may not exceed APGD-CE's by more than one point: with fewer images the comparison
rests on a handful of points, so one point (5 of 500 images) is the whole tolerance.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from soupviz.attacks import APGD, DEFAULT_BUDGETS, PGD, THREATS, robust_mask
from soupviz.data import augment, load_split
from soupviz.errors import DataError

pytestmark = pytest.mark.slow

TRAIN_IMAGES, EPOCHS, TEST_IMAGES = 4000, 8, 500
TOLERANCE = 0.01  # robust accuracy, as a fraction of all test images


def tiny_cnn() -> nn.Module:
    """Three conv layers, 16-64 channels, normalisation inside: 25k parameters."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(256, 10),
    )  # fmt: skip


class Normalised(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - 0.45) / 0.25)


def fast_adversarial_training(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> nn.Module:
    """FGSM-RS-style training (Wong et al. 2020): one random-start step per batch, with
    steps of 1.25·eps (L∞) and eps (L2, L1), threats taken in turn; one-cycle learning rate."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Normalised(tiny_cnn())
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.SGD(
        model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    batches = (len(y) + 127) // 128
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, 0.1, total_steps=EPOCHS * batches, pct_start=0.3
    )
    step = 0
    for _ in range(EPOCHS):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), 128):
            index = order[start : start + 128]
            images = augment(x[index], generator)
            threat = THREATS[step % 3]
            eps = DEFAULT_BUDGETS[threat]
            length = (1.25 if threat == "linf" else 1.0) * eps
            attack = PGD(model, threat, eps, steps=1, step_size=length, early_stop=False, seed=step)
            model.train()
            loss = F.cross_entropy(model(attack(images, y[index])), y[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
    return model.eval()


@pytest.fixture(scope="session")
def robust_setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    try:
        train = load_split(None, "train").subset(TRAIN_IMAGES, seed=1)
        test = load_split(None, "test").subset(TEST_IMAGES, seed=0)
    except DataError as error:
        pytest.skip(f"CIFAR-10 is not available ({error})")
    model = fast_adversarial_training(train.floats().contiguous(), train.labels)
    return model, test.floats().contiguous(), test.labels


def test_model_is_robust_enough_for_the_comparison(robust_setup):
    model, x, y = robust_setup
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    assert clean >= 0.3
    for threat in THREATS:
        robust = robust_mask(APGD(model, threat, DEFAULT_BUDGETS[threat], steps=20), model, x, y)
        # Neither trivial (all points fall) nor unattackable (none fall).
        assert 0.1 <= robust.float().mean().item() <= clean - 0.05, threat


@pytest.mark.parametrize("steps", [10, 20])
@pytest.mark.parametrize("threat", THREATS)
def test_pgd_is_as_strong_as_apgd_ce(robust_setup, threat, steps):
    model, x, y = robust_setup
    eps = DEFAULT_BUDGETS[threat]
    ours = robust_mask(PGD(model, threat, eps, steps=steps), model, x, y).float().mean().item()
    reference = (
        robust_mask(APGD(model, threat, eps, steps=steps), model, x, y).float().mean().item()
    )
    assert ours <= reference + TOLERANCE, (
        f"PGD-{steps} {threat}: {ours:.3f} vs APGD-CE {reference:.3f}"
    )

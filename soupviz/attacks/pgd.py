"""Projected gradient descent (Madry et al.) for L∞, L2 and L1 budgets, our own fast attack.

For interactive estimates on any classifier callable, including a batch of soups folded into
the batch dimension (`fixed_batch`): restarts, early stopping and target classes around the
projected-gradient engine (`attacks.engine`), whose steps are the steepest ascent directions of
each norm followed by the exact projection. The step length decays from a large first step
on a cosine schedule; on a small CNN it matched APGD-CE at 10 and 20 steps
(tests/integration/test_attack_crosscheck.py). On the shipped models untargeted PGD alone
overstates robustness against AutoAttack by several points at L∞/L2 and far more at L1 (the
measured gaps are in bench/results/attack_strength.json, which `attacks.defaults` reads);
`TargetedPGD` after it (PGD-T, the L∞/L2 default chain) closes the gap at L∞ and L2.
"""

from __future__ import annotations

import torch

from soupviz.attacks.base import Attack, Classifier, fixed_batch
from soupviz.attacks.engine import Ascent, ascend
from soupviz.attacks.losses import attack_loss, is_success
from soupviz.attacks.names import stage_name
from soupviz.attacks.projections import random_start
from soupviz.attacks.robust import attack_survivors
from soupviz.errors import SoupvizError

# Initial step length as a multiple of eps (L∞, L2: APGD's 2·eps; L1: one budget).
INITIAL_STEP = {"linf": 2.0, "l2": 2.0, "l1": 1.0}


class PGD(Attack):
    """PGD with random start, restarts and a decaying step, untargeted or targeted.

    Args:
        model, threat, eps, seed: see `Attack`.
        steps: gradient steps per restart.
        step_size: initial step length in the threat's norm, pixel scale; default
            `INITIAL_STEP[threat]·eps`, decayed to zero on a cosine schedule.
        restarts: random starts; each restart attacks only the examples still unbroken.
        random_start: start from a random point of the budget instead of the clean image.
        l1_sparsity: fraction of coordinates moved by one L1 step; None (default) moves
            ⌈2.5·eps⌉ coordinates, about as many as the budget can push to the box edge
            (pixels move at most 1), which measured best from eps = 3 to 24.
        loss: 'ce' (cross-entropy) or 'dlr' (Croce & Hein's difference of logits ratio).
        early_stop: return each example's first fooling iterate and stop spending forward
            passes on it (robust accuracy); False runs every step on every example and
            returns the last iterate (adversarial training wants the high-loss point).

    Example:
        >>> x_adv = PGD(model, "linf", 8 / 255, steps=10)(x, y)
    """

    name = "PGD"
    stop_at_target = True  # a targeted run succeeds on reaching the target (False: on leaving y)

    def __init__(
        self,
        model: Classifier,
        threat: str,
        eps: float,
        steps: int = 10,
        step_size: float | None = None,
        restarts: int = 1,
        random_start: bool = True,
        l1_sparsity: float | None = None,
        seed: int = 0,
        loss: str = "ce",
        early_stop: bool = True,
    ) -> None:
        super().__init__(model, threat, eps, seed)
        if int(steps) < 1 or int(restarts) < 1:
            raise SoupvizError(f"PGD needs at least one step and one restart, got steps={steps}, restarts={restarts}.")
        if loss not in ("ce", "dlr"):
            raise SoupvizError(f"Unknown PGD loss {loss!r}: use 'ce' or 'dlr'.")
        if l1_sparsity is not None and not 0 < l1_sparsity <= 1:
            raise SoupvizError(f"l1_sparsity must be a fraction in (0, 1], got {l1_sparsity}.")
        self.steps = int(steps)
        self.step_size = float(step_size) if step_size else INITIAL_STEP[threat] * self.eps
        self.restarts = int(restarts)
        self.random_start = random_start
        self.l1_sparsity = l1_sparsity
        self.loss = loss
        self.early_stop = early_stop

    def attack_name(self) -> str:
        return stage_name("pgd-dlr" if self.loss == "dlr" else "pgd", self.steps, self.restarts)

    @property
    def ascent(self) -> Ascent:
        """The engine's settings: a step decayed from `step_size` on a cosine schedule."""
        return Ascent(self.threat, self.eps, self.steps, self.step_size, "cosine", self.l1_sparsity)

    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        generator = self.generator(x.device)
        best = x.clone()
        unbroken = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)

        def restart(_: int, rows: torch.Tensor) -> torch.Tensor:
            # Starts are drawn for the whole batch, so an example's start does not depend
            # on which other examples are still unbroken.
            start = self._start(x, generator)[rows]
            found, x_adv = self._run(x[rows], y[rows], None if target is None else target[rows], start)
            update = unbroken[rows]  # with a fixed batch, broken examples keep their result
            best[rows[update]] = x_adv[update]
            return ~found

        attack_survivors(unbroken, range(self.restarts), restart, fixed_batch(self.model))
        return best

    def _start(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if not self.random_start:
            return torch.zeros_like(x)
        return random_start(self.threat, x, self.eps, generator)

    def _run(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, delta: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One restart on (x, y) from `delta`: (fooled? (N,), adversarial images (N, ...))."""
        wanted = target if self.stop_at_target else None

        def loss(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return attack_loss(self.loss, logits, y[rows], None if target is None else target[rows])

        def fooled(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return is_success(logits, y[rows], None if wanted is None else wanted[rows])

        if self.early_stop:
            x_adv, found = ascend(self.model, x, self.ascent, loss, delta, stop=fooled)
            return found, x_adv
        x_adv = ascend(self.model, x, self.ascent, loss, delta).images
        with torch.no_grad():
            return fooled(self.model(x_adv), torch.arange(x.shape[0], device=x.device)), x_adv


class TargetedPGD(PGD):
    """PGD-T: our PGD pushed in turn towards each of the `n_target_classes` highest-scoring
    wrong classes with the targeted DLR loss, as APGD-T does, each target run only on the
    examples no earlier target broke. Untargeted in effect: an example counts as broken
    when it leaves its true class.

    Args:
        model, threat, eps, seed, steps, step_size, restarts, random_start, l1_sparsity: see `PGD`.
        n_target_classes: wrong classes tried, highest clean logit first.

    Example:
        >>> x_adv = TargetedPGD(model, "linf", 8 / 255, steps=10, n_target_classes=3)(x, y)
    """

    name = "PGD-T"
    stop_at_target = False

    def __init__(
        self,
        model: Classifier,
        threat: str,
        eps: float,
        steps: int = 10,
        n_target_classes: int = 3,
        step_size: float | None = None,
        restarts: int = 1,
        random_start: bool = True,
        l1_sparsity: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(model, threat, eps, steps, step_size, restarts, random_start, l1_sparsity, seed, loss="dlr")
        if int(n_target_classes) < 1:
            raise SoupvizError(f"PGD-T needs at least one target class, got {n_target_classes}.")
        self.n_target_classes = int(n_target_classes)

    def attack_name(self) -> str:
        return stage_name("pgd-t", self.steps, self.restarts, self.n_target_classes)

    def perturb(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        if target is not None:
            raise SoupvizError("PGD-T chooses its own target classes; to push towards given classes use PGD.")
        with torch.no_grad():
            ranked = self.model(x).argsort(dim=1, descending=True)
        wrong = ranked[ranked != y[:, None]].view(x.shape[0], -1)  # wrong classes, best first
        best, unbroken = x.clone(), torch.ones(x.shape[0], dtype=torch.bool, device=x.device)

        def push(rank: int, rows: torch.Tensor) -> torch.Tensor:
            x_adv = PGD.perturb(self, x[rows], y[rows], wrong[rows, rank])
            with torch.no_grad():
                fooled = self.model(x_adv).argmax(1) != y[rows]
            keep = unbroken[rows] & fooled
            best[rows[keep]] = x_adv[keep]
            return ~fooled

        ranks = range(min(self.n_target_classes, wrong.shape[1]))
        attack_survivors(unbroken, ranks, push, fixed_batch(self.model))
        return best

"""Whether two ingredients can be souped: their shared lineage (from the cards) and the loss and
accuracy barrier along the straight path between their weights (measured on a few images).

Soups work for models fine-tuned from one base; averaging independently trained networks lands
in a region of high loss (Frankle et al. 2020, Neyshabur et al. 2020, Wortsman et al. 2022).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from soupviz.checkpoints.families import Ingredient, SoupFamily, family_from_ingredients
from soupviz.data import ImageSet
from soupviz.errors import CheckpointError
from soupviz.soups.parameters import ParameterMatrix
from soupviz.soups.soup import BATCHNORM_LABELS, Soup
from soupviz.soups.weights import interpolation_line
from soupviz.threats import NOMINAL

# A pair "soups well" when no point of the straight path falls more than these below the line
# joining its ends: 0.5 nats of cross-entropy, 10 points of accuracy; "barrier: do not mix" when
# it surely does; "cannot tell" when the 95% bootstrap interval of a barrier straddles its limit or
# an end is near chance (less than the accuracy limit above it: a path cannot fall that far below).
LOSS_BARRIER_LIMIT = 0.5
ACCURACY_BARRIER_LIMIT = 0.10
SOUPS_WELL, DO_NOT_MIX, CANNOT_TELL = "soups well", "barrier: do not mix", "cannot tell"
RESAMPLES = 1000  # bootstrap resamples of the images, seeded
DEFAULT_CHECK_IMAGES = 1000  # shipped family: "cannot tell" at 64 and 256 images, stable at 1000 (README)
# A network of the shipped family's architecture trained independently (kept outside the family).
SHIPPED_OUTSIDER = Path(__file__).resolve().parents[2] / "assets" / "unrelated" / "unrelated.safetensors"


def path_barrier(values: Sequence[float], alphas: Sequence[float], higher_is_better: bool) -> float:
    """The largest gap between the line joining a path's end values and the path itself.

    Args:
        values: a metric at each point of the path, `alphas` from 0 to 1 (ends included).
        higher_is_better: True for accuracy (the gap is line - value), False for a loss
            (value - line).

    Returns:
        max over the path of the gap, in the metric's units; 0 when the path never falls below
        the line (the ends themselves give 0).

    Example:
        >>> path_barrier([0.9, 0.5, 0.7], [0.0, 0.5, 1.0], higher_is_better=True)  # line 0.8 at 0.5
        0.3...
    """
    first, last = values[0], values[-1]
    gaps = [(first + a * (last - first)) - v for v, a in zip(values, alphas, strict=True)]
    return max(0.0, *(g if higher_is_better else -g for g in gaps))


def lineage(family: SoupFamily) -> dict[str, list[str]]:
    """Each ingredient's ancestry as content hashes, itself first, then its parent, the parent's
    parent (followed through the family's own cards), ..."""
    by_hash = {i.card.content_hash: i.card for i in family.ingredients if i.card.content_hash}
    chains = {}
    for ingredient in family.ingredients:
        chain, card = [ingredient.card.content_hash], ingredient.card
        while card is not None and card.parent and card.parent.get("content_hash") not in chain:
            chain.append(card.parent["content_hash"])
            card = by_hash.get(chain[-1])
        chains[ingredient.name] = chain
    return chains


def shared_base(family: SoupFamily, a: str, b: str) -> str | None:
    """The name of the nearest checkpoint both `a` and `b` descend from (or are), per the cards;
    None when the cards show no common ancestor."""
    chains = lineage(family)
    names: dict[str | None, str | None] = {}
    for ingredient in family.ingredients:  # the first of bit-identical checkpoints names them
        names.setdefault(ingredient.card.content_hash, ingredient.name)
    for ingredient in family.ingredients:
        parent = ingredient.card.parent or {}
        names.setdefault(parent.get("content_hash"), parent.get("name"))
    common = next((h for h in chains[a] if h in chains[b]), None)
    return None if common is None else names.get(common) or common[:12]


def unrelated_pairs(family: SoupFamily) -> list[tuple[str, str]]:
    """Pairs of ingredients whose cards show no shared base: souping them is a gamble."""
    return [(a, b) for a, b in itertools.combinations(family.names, 2) if shared_base(family, a, b) is None]


def outsider_partner(family: SoupFamily) -> str:
    """The ingredient whose path to an outside network is shown first: the nominal one (trained
    without a threat), as a clean-trained outsider is fairest against it; else the first."""
    return next((i.name for i in family.ingredients if i.card.threat == NOMINAL), family.names[0])


@dataclass
class PairBarrier:
    """The straight path from ingredient `a` (alpha 0) to `b` (alpha 1); barriers as in
    `path_barrier`, loss in nats (mean cross-entropy), accuracy as a fraction."""

    a: str
    b: str
    alphas: list[float]
    losses: list[float]
    accuracies: list[float]
    base: str | None
    loss_interval: tuple[float, float] | None = None
    accuracy_interval: tuple[float, float] | None = None
    chance: float = 0.1

    @property
    def loss_barrier(self) -> float:
        return path_barrier(self.losses, self.alphas, higher_is_better=False)

    @property
    def accuracy_barrier(self) -> float:
        return path_barrier(self.accuracies, self.alphas, higher_is_better=True)

    @property
    def near_chance(self) -> bool:
        """Whether an end's accuracy is within `ACCURACY_BARRIER_LIMIT` of chance: a path cannot fall
        that far below such an end, so no barrier can show."""
        return min(self.accuracies[0], self.accuracies[-1]) < self.chance + ACCURACY_BARRIER_LIMIT

    @property
    def verdict(self) -> str:
        """SOUPS_WELL when both barriers (their whole 95% intervals, where measured) are within the
        limits, DO_NOT_MIX when one surely is not, else CANNOT_TELL (also when an end is near chance)."""
        if self.near_chance:
            return CANNOT_TELL
        loss = self.loss_interval or (self.loss_barrier,) * 2
        accuracy = self.accuracy_interval or (self.accuracy_barrier,) * 2
        if loss[0] > LOSS_BARRIER_LIMIT or accuracy[0] > ACCURACY_BARRIER_LIMIT:
            return DO_NOT_MIX
        if loss[1] <= LOSS_BARRIER_LIMIT and accuracy[1] <= ACCURACY_BARRIER_LIMIT:
            return SOUPS_WELL
        return CANNOT_TELL


@dataclass
class Soupability:
    """Barriers of every pair of `names` (a family's ingredients, and `outsider` if one was
    measured against them), on `images` images at `points` points per path."""

    names: list[str]
    pairs: list[PairBarrier]
    images: int
    points: int
    batchnorm: str = BATCHNORM_LABELS["mix"]
    outsider: str | None = None
    ends: dict[str, tuple[float, float]] = field(default_factory=dict)
    seed: int = 0

    def pair(self, a: str, b: str) -> PairBarrier:
        return next(p for p in self.pairs if {p.a, p.b} == {a, b})

    @property
    def within(self) -> list[PairBarrier]:
        """The pairs of the family's own ingredients."""
        return [p for p in self.pairs if self.outsider not in (p.a, p.b)]

    @property
    def against(self) -> list[PairBarrier]:
        """Each ingredient's path to the outside network (ingredient at alpha 0); empty without one."""
        return [p for p in self.pairs if p.b == self.outsider]

    def matrix(self) -> list[dict[str, str]]:
        """Rows of a K x K table: each cell the pair's verdict, accuracy and loss barrier."""
        rows = []
        for a in self.names:
            row = {"ingredient": a}
            for b in self.names:
                p = None if a == b else self.pair(a, b)
                barriers = "" if p is None else f" (acc −{p.accuracy_barrier:.1%}, loss +{p.loss_barrier:.2f})"
                row[b] = "—" if p is None else p.verdict + barriers
            rows.append(row)
        return rows

    def summary(self) -> str:
        """Plain sentences: which pairs not to mix, or that every pair soups well; with an
        outside network, also whether it soups with the family."""
        bad = [f"{p.a}–{p.b}" for p in self.within if p.verdict == DO_NOT_MIX]
        unsure = [f"{p.a}–{p.b}" for p in self.within if p.verdict == CANNOT_TELL]
        chance = [f"{p.a}–{p.b}" for p in self.within if p.near_chance]
        orphan = [f"{p.a}–{p.b}" for p in self.within if p.base is None]
        if bad:
            text = f"Do not mix {', '.join(bad)}: the straight path between them crosses a barrier."
        elif not unsure:
            text = "Every pair soups well: no straight path between two ingredients crosses a barrier."
        else:
            text = ""
        if unsure:
            why = (f" ({', '.join(chance)}: an end is near chance accuracy, where no barrier can show)"
                   if chance else "")
            text += (f" Cannot tell for {', '.join(unsure)}{why}: a barrier's 95% interval reaches across its "
                     "limit or the ends are too weak; measure on more images.")
        if orphan:
            text += (f" The cards show no shared base for {', '.join(orphan)}: their verdicts rest on the "
                     "measured paths alone.")
        text = text.strip()
        if self.outsider is not None:
            text += " " + self.outsider_verdict()
        return text

    def outsider_verdict(self) -> str:
        """One plain sentence on the outside network against the family's ingredients."""
        blocked = [p.a for p in self.against if p.verdict == DO_NOT_MIX]
        worst = max(self.against, key=lambda p: p.accuracy_barrier)
        unsure = [p.a for p in self.against if p.verdict == CANNOT_TELL]
        if not blocked and unsure:
            return (f"Cannot tell whether {self.outsider} soups with {', '.join(unsure)}: an interval reaches "
                    "across its limit or an end is near chance.")
        if not blocked:
            return f"{self.outsider} soups with every ingredient: no path to it crosses a barrier."
        return (
            f"Do not mix {self.outsider} with {', '.join(blocked)}: the straight path to it crosses a barrier "
            f"(accuracy up to {worst.accuracy_barrier:.0%} below the line, from {worst.a})."
        )

    def caption(self) -> str:
        return (
            f"Straight paths at {self.points} points on {self.images} test images. Barrier: the largest "
            f"drop below the line joining the ends, with a 95% interval from {RESAMPLES} bootstrap resamples "
            f"of the images (seed {self.seed}); 'soups well' means the whole interval is within "
            f"{ACCURACY_BARRIER_LIMIT:.0%} accuracy and {LOSS_BARRIER_LIMIT} nats of loss, 'cannot tell' that "
            f"it reaches across or that an end is within {ACCURACY_BARRIER_LIMIT:.0%} of chance accuracy. "
            f"{self.batchnorm}"
        )


def straight_paths(
    soup: Soup,
    pairs: Sequence[tuple[int, int]],
    x: torch.Tensor,
    y: torch.Tensor,
    points: int = 7,
    *, seed: int = 0,
    batch: int = 256,
) -> tuple[list[PairBarrier], torch.Tensor, torch.Tensor]:
    """Loss and accuracy along the straight path between pairs of a soup's ingredients.

    Each ingredient is run once and each pair adds `points - 2` soups, under the soup's
    BatchNorm rule (`Soup.bn_label`). Architecture-agnostic: any template module will do. Each
    barrier gets a 95% percentile interval from `RESAMPLES` bootstrap resamples of the images.

    Args:
        soup: a soup over the ingredients (rows of its parameter matrix, named by `params.names`).
        pairs: (i, j) row indices; the path runs from i (alpha 0) to j (alpha 1).
        x: inputs on the soup's device, e.g. (N, 3, 32, 32) images in [0, 1]; y: labels (N,).
        points: points per path, ends included (at least 3).
        seed: seeds the bootstrap.
        batch: images per forward pass.

    Returns:
        One `PairBarrier` per pair, in order, with `base` left None (lineage is the caller's), and
        each ingredient's own clean accuracy and mean loss, (K,) each.
    """
    k, names, points = soup.params.k, soup.params.names, max(points, 3)
    lines = [interpolation_line(k, j, i, points) for i, j in pairs]  # alpha on j: from i to j
    weights = torch.cat([torch.eye(k, dtype=torch.float64), *(line[1:-1] for line in lines)])
    with torch.no_grad():
        logits = torch.cat([soup.batched_logits(weights, part) for part in x.split(batch)], dim=1)
    per_image_loss = F.cross_entropy(logits.transpose(1, 2), y.expand(len(logits), -1), reduction="none").cpu()
    correct = (logits.argmax(-1) == y).float().cpu()
    draws = torch.randint(len(y), (RESAMPLES, len(y)), generator=torch.Generator().manual_seed(seed))
    losses, accuracies = per_image_loss.mean(1), correct.mean(1)
    resampled_losses, resampled_accuracies = per_image_loss[:, draws].mean(-1), correct[:, draws].mean(-1)  # (S, B)
    inner, found = points - 2, []
    for index, (i, j) in enumerate(pairs):
        rows = [i, *range(k + index * inner, k + (index + 1) * inner), j]
        alphas = lines[index][:, j].tolist()
        found.append(
            PairBarrier(
                names[i],
                names[j],
                alphas,
                losses[rows].tolist(),
                accuracies[rows].tolist(),
                None,
                _interval(resampled_losses[rows], alphas, higher_is_better=False),
                _interval(resampled_accuracies[rows], alphas, higher_is_better=True),
                1 / logits.shape[-1],
            )
        )
    return found, accuracies[:k], losses[:k]


def _interval(values: torch.Tensor, alphas: list[float], higher_is_better: bool) -> tuple[float, float]:
    """95% percentile interval of `path_barrier` over bootstrap columns of `values` (points, B)."""
    alpha = torch.tensor(alphas, dtype=values.dtype).unsqueeze(1)
    gaps = values[0] + alpha * (values[-1] - values[0]) - values
    barriers = (gaps if higher_is_better else -gaps).amax(0).clamp(min=0)
    low, high = torch.quantile(barriers, torch.tensor([0.025, 0.975], dtype=values.dtype)).tolist()
    return max(0.0, low), max(0.0, high)  # never "-0.000"


def measure_soupability(
    family: SoupFamily,
    images: ImageSet,
    points: int = 7,
    params: ParameterMatrix | None = None,
    calibration: torch.Tensor | None = None,
    *, seed: int = 0,
) -> Soupability:
    """Loss and accuracy along the straight path between every pair of ingredients.

    Each ingredient is run once; each pair adds `points - 2` soups, so 4 ingredients at 7
    points on 64 images take a few seconds on a CPU. BatchNorm running means are mixed like the
    weights and running variances in log space (the rule every soup uses), unless
    `calibration` images are given.

    Args:
        images: the images to measure on (a small fixed subset, e.g. 64 test images).
        points: points per path, ends included (at least 3).
        params: the family's parameter matrix, if already stacked (its device is used).
        calibration: clean training images (N, 3, H, W) to re-estimate BatchNorm statistics
            on, per soup and for the ingredients themselves (`Soup.reestimate_batchnorm`).
        seed: seeds the bootstrap intervals of the barriers.
    """
    params = params or ParameterMatrix.from_family(family)
    soup = Soup(family.template(), params)
    if calibration is not None:
        soup.reestimate_batchnorm(calibration, batch_size=128, batches=-(-len(calibration) // 128))
    pairs = list(itertools.combinations(range(len(family.names)), 2))
    x, y = images.floats(params.device), images.labels.to(params.device)
    found, accuracies, losses = straight_paths(soup, pairs, x, y, points, seed=seed)
    for pair in found:
        pair.base = shared_base(family, pair.a, pair.b)
    ends = {name: (float(a), float(loss)) for name, a, loss in zip(family.names, accuracies, losses, strict=True)}
    return Soupability(family.names, found, len(images), max(points, 3), soup.bn_label, None, ends, seed)


def measure_against(
    family: SoupFamily,
    outsider: Ingredient,
    images: ImageSet,
    points: int = 7,
    device: torch.device | str = "cpu",
    *, calibration: torch.Tensor | None = None,
    seed: int = 0,
) -> Soupability:
    """Every pair of the family's ingredients and each ingredient against an outside network,
    on the same images and points (`measure_soupability` over the family plus `outsider`).

    The outsider, e.g. a network of the same architecture trained independently, must have
    the family's architecture and layout; its card's lineage decides its pairs' `base`.
    """
    if outsider.card.arch != family.arch:
        raise CheckpointError(
            f"{outsider.path} is a {outsider.card.arch} but the family {family.name!r} is a {family.arch}: "
            "the straight path between two networks needs one architecture."
        )
    if outsider.name in family.names:
        raise CheckpointError(
            f"The outside network {outsider.path} is named {outsider.name!r} like an ingredient of "
            f"{family.name!r}: rename it (its file stem and card) to tell them apart."
        )
    family_from_ingredients([*family.ingredients, outsider], family.name)  # keys and shapes checked
    joined = SoupFamily(family.name, [*family.ingredients, outsider], family.folder)
    params = ParameterMatrix.from_family(joined, device)
    report = measure_soupability(joined, images, points, params, calibration, seed=seed)
    report.outsider = outsider.name
    return report


def check_report(report: Soupability) -> str:
    """The text `soupviz check` prints: each ingredient's own clean accuracy and loss, then each
    pair's shared base ('none' where the cards show none), barriers with their 95% intervals and
    verdict, the summary and the caption."""
    lines = [f"{'ingredient':<24}{'clean accuracy':>15}{'loss':>8}"]
    lines += [f"{name:<24}{accuracy:>15.1%}{loss:>8.3f}" for name, (accuracy, loss) in report.ends.items()]
    lines += ["", f"{'pair':<24}{'shared base':<14}{'loss barrier [95%]':>24}{'acc barrier [95%]':>24}  verdict"]
    for p in report.within + report.against:
        loss = p.loss_interval or (p.loss_barrier,) * 2
        accuracy = p.accuracy_interval or (p.accuracy_barrier,) * 2
        verdict = p.verdict + (" (no shared base)" if p.base is None else "")
        lines.append(
            f"{p.a + ' – ' + p.b:<24}{p.base or 'none':<14}"
            f"{f'{p.loss_barrier:.3f} [{loss[0]:.3f}, {loss[1]:.3f}]':>24}"
            f"{f'{p.accuracy_barrier:.1%} [{accuracy[0]:.1%}, {accuracy[1]:.1%}]':>24}  {verdict}"
        )
    return "\n".join([*lines, "", report.summary(), report.caption()])

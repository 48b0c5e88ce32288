"""RobustBench 1.1.1's CIFAR-10 entries (L∞, L2, corruptions) whose architectures soupviz registers:
for each, the registered architecture, robustbench's constructor call and the input normalisation
exactly as robustbench's class applies it. Read from robustbench's `model_zoo/cifar10.py` and its
architecture files (facts, not code); `tests/unit/checkpoints/test_zoo_entries.py` checks every row against
robustbench's own classes when it is installed.

Several of these classes set `mu`/`sigma` in their constructor while the zoo's files lack them
(robustbench loads those `strict=False`), so the normalisation cannot be read from such a file:
it comes from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from soupviz.errors import CheckpointError
from soupviz.models.registry import CIFAR10_MEAN, CIFAR10_STD

RAW = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
CIFAR10 = (CIFAR10_MEAN, CIFAR10_STD)
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # Hendrycks2019UsingNet's `2 * x - 1`
ENGSTROM = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
AUGUSTIN = (
    (0.4913997551666284, 0.48215855929893703, 0.4465309133731618),
    (0.24703225141799082, 0.24348516474564, 0.26158783926049628),
)
RONY = ((0.491, 0.482, 0.447), (0.247, 0.243, 0.262))
FROM_FILE = None  # the class's buffers are stand-ins that the file's `mu`/`sigma` replace
ZOO_THREATS = ("linf", "l2", "corruptions")
# robustbench's folder names (`models/cifar10/Linf/NAME.pt`) for the threat of a file's entry.
_FOLDERS = {"linf": "linf", "l2": "l2", "corruptions": "corruptions"}


@dataclass(frozen=True)
class ZooEntry:
    """One RobustBench CIFAR-10 entry as soupviz builds it.

    `normalisation` is (mean, std) of the input in [0, 1] as robustbench's class applies it
    (`RAW` for a class that takes pixels as they are), or `FROM_FILE` where the class's values are
    replaced by the file's. `wrapper` is the key robustbench reads the weights from ('last' for
    files that hold 'last' and 'best'). `constructor` is robustbench's call, for cards and messages.
    """

    name: str
    threat: str
    arch: str
    constructor: str
    normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None
    wrapper: str | None = None

    @property
    def key(self) -> str:
        return f"{self.name} ({self.threat})"


def _rows(threats: str, arch: str, constructor: str, normalisation, names: str, wrapper: str | None = None):
    return [
        ZooEntry(name, threat, arch, constructor, normalisation, wrapper)
        for threat in threats.split()
        for name in names.split()
    ]


_WRN = "WideResNet(depth={}, widen_factor={}, sub_block1={})"
_DM = "DMWideResNet(depth={}, width={}, activation_fn={}, mean=CIFAR10_MEAN, std=CIFAR10_STD)"
ZOO: tuple[ZooEntry, ...] = tuple(
    [
        # robustbench's WideResNet with an unused `sub_block1` (its forward never calls it): raw pixels.
        *_rows("linf", "wide_resnet28_10", _WRN.format(28, 10, True), RAW,
               "Carmon2019Unlabeled Sehwag2020Hydra Wang2020Improving Wu2020Adversarial_extra "
               "Zhang2020Geometry Sridhar2021Robust"),
        *_rows("linf", "wide_resnet34_10", _WRN.format(34, 10, True), RAW,
               "Zhang2019Theoretically Huang2020Self Zhang2019You Zhang2020Attacks Sitawarin2020Improving "
               "Cui2020Learnable_34_10"),
        *_rows("linf corruptions", "wide_resnet34_10", _WRN.format(34, 10, True), RAW, "Addepalli2021Towards_WRN34"),
        *_rows("linf", "wide_resnet34_10", "Chen2020EfficientNet: " + _WRN.format(34, 10, True) + ", mu/sigma",
               CIFAR10, "Chen2020Efficient"),
        # robustbench's WideResNet without sub_block1.
        *_rows("linf l2 corruptions", "wide_resnet28_10", _WRN.format(28, 10, False), RAW, "Standard"),
        *_rows("linf", "wide_resnet28_10", "Hendrycks2019UsingNet: " + _WRN.format(28, 10, False) + ", 2x - 1",
               HALF, "Hendrycks2019Using"),
        *_rows("l2", "wide_resnet28_10", "Rony2019DecouplingNet: " + _WRN.format(28, 10, False) + ", mu/sigma",
               RONY, "Rony2019Decoupling"),
        *_rows("linf l2", "wide_resnet34_10", _WRN.format(34, 10, False), RAW, "Wu2020Adversarial Sehwag2021Proxy"),
        *_rows("linf", "wide_resnet34_10", _WRN.format(34, 10, False), RAW,
               "Chen2021LTD_WRN34_10 Jia2022LAS-AT_34_10 Cui2023Decoupled_WRN-34-10 Chen2024Data_WRN_34_10"),
        *_rows("linf corruptions", "wide_resnet34_10", _WRN.format(34, 10, False), RAW,
               "Addepalli2022Efficient_WRN_34_10"),
        *_rows("l2", "wide_resnet34_10", "Augustin2020AdversarialWideNet: " + _WRN.format(34, 10, False)
               + ", mu/sigma", AUGUSTIN, "Augustin2020Adversarial_34_10 Augustin2020Adversarial_34_10_extra"),
        # DeepMind's layout: CIFAR-10 statistics as non-persistent buffers (never in the file).
        *_rows("linf l2", "dm_wide_resnet28_10", _DM.format(28, 10, "Swish"), CIFAR10,
               "Rebuffi2021Fixing_28_10_cutmix_ddpm"),
        *_rows("linf", "dm_wide_resnet28_10", _DM.format(28, 10, "Swish"), CIFAR10,
               "Gowal2020Uncovering_28_10_extra Rade2021Helper_ddpm Gowal2021Improving_28_10_ddpm_100m "
               "Pang2022Robustness_WRN28_10"),
        *_rows("linf l2", "dm_wide_resnet28_10", _DM.format(28, 10, "nn.SiLU"), CIFAR10, "Wang2023Better_WRN-28-10"),
        *_rows("linf", "dm_wide_resnet28_10", _DM.format(28, 10, "nn.SiLU"), CIFAR10,
               "Xu2023Exploring_WRN-28-10 Cui2023Decoupled_WRN-28-10"),
        *_rows("linf", "wide_resnet70_16", _DM.format(70, 16, "Swish"), CIFAR10,
               "Gowal2020Uncovering_70_16 Gowal2020Uncovering_70_16_extra Gowal2021Improving_70_16_ddpm_100m "
               "Pang2022Robustness_WRN70_16"),
        *_rows("linf l2", "wide_resnet70_16", _DM.format(70, 16, "Swish"), CIFAR10,
               "Rebuffi2021Fixing_70_16_cutmix_ddpm Rebuffi2021Fixing_70_16_cutmix_extra"),
        *_rows("l2", "wide_resnet70_16", _DM.format(70, 16, "Swish"), CIFAR10,
               "Gowal2020Uncovering Gowal2020Uncovering_extra"),
        *_rows("linf l2", "wide_resnet70_16", _DM.format(70, 16, "nn.SiLU"), CIFAR10, "Wang2023Better_WRN-70-16"),
        *_rows("corruptions", "wide_resnet70_16", _DM.format(70, 16, "Swish"), CIFAR10,
               "Rebuffi2021Fixing_70_16_cutmix_extra_Linf Rebuffi2021Fixing_70_16_cutmix_extra_L2"),
        # PreActResNet-18: robustbench's PreActBlock (shortcut on the block's input, no final BatchNorm) ...
        *_rows("linf", "preact_resnet18_linf", "Wong2020FastNet: PreActResNet(PreActBlock, [2, 2, 2, 2]), mu/sigma",
               CIFAR10, "Wong2020Fast"),
        *_rows("linf", "preact_resnet18_linf", "PreActResNet(PreActBlock, [2, 2, 2, 2])", RAW,
               "Andriushchenko2020Understanding", wrapper="last"),
        # ... and PreActBlockV2 with a BatchNorm before the classifier (soupviz's preact_resnet18).
        *_rows("l2", "preact_resnet18", "Rice2020OverfittingNetL2: PreActResNet(PreActBlockV2, [2, 2, 2, 2], "
               "bn_before_fc=True), mu/sigma", CIFAR10, "Rice2020Overfitting"),
        *_rows("corruptions", "preact_resnet18", "Kireev2021EffectivenessNet: PreActResNet(PreActBlockV2, "
               "[2, 2, 2, 2], bn_before_fc=True), mu/sigma", CIFAR10,
               "Kireev2021Effectiveness_Gauss50percent Kireev2021Effectiveness_AugMixNoJSD "
               "Kireev2021Effectiveness_RLAT Kireev2021Effectiveness_RLATAugMixNoJSD "
               "Kireev2021Effectiveness_RLATAugMix",
               wrapper="last"),
        # robustbench's ResNet (the `robustness` library's CIFAR layout).
        *_rows("linf l2", "resnet50", "Engstrom2019RobustnessNet: ResNet(Bottleneck, [3, 4, 6, 3]), mu/sigma",
               ENGSTROM, "Engstrom2019Robustness"),
        *_rows("l2", "resnet50", "Augustin2020AdversarialNet: ResNet(Bottleneck, [3, 4, 6, 3]), mu/sigma",
               AUGUSTIN, "Augustin2020Adversarial"),
        *_rows("linf l2", "resnet18", "ResNet18()", RAW, "Sehwag2021Proxy_R18"),
        *_rows("linf", "resnet18", "ResNet18()", RAW, "Addepalli2021Towards_RN18 Addepalli2022Efficient_RN18"),
        *_rows("corruptions", "resnet18", "Modas2021PRIMEResNet18: ResNet(BasicBlock, [2, 2, 2, 2]), mu/sigma "
               "from the file", FROM_FILE, "Modas2021PRIMEResNet18"),
    ]
)


def zoo_entry(name: str, threat: str | None = None) -> ZooEntry:
    """The entry `name`, for `threat` ('linf', 'l2', 'corruptions') where the name has several.

    Raises:
        CheckpointError: the name is not in the table, or it has entries that differ in
            architecture or normalisation and `threat` does not pick one.
    """
    found = [entry for entry in ZOO if entry.name == name]
    if not found:
        raise CheckpointError(
            f"{name!r} is not a RobustBench 1.1.1 CIFAR-10 entry of an architecture soupviz registers "
            "(`soupviz.checkpoints.zoo_entries.ZOO`): give --arch and --mean/--std instead."
        )
    if threat is not None and threat in ZOO_THREATS:
        picked = [entry for entry in found if entry.threat == threat]
        if not picked:
            raise CheckpointError(
                f"RobustBench has {name!r} for {', '.join(e.threat for e in found)}, not {threat}: "
                "check --threat."
            )
        return picked[0]
    if len({(entry.arch, entry.normalisation, entry.wrapper) for entry in found}) > 1:
        raise CheckpointError(
            f"RobustBench's {name!r} differs between {', '.join(e.threat for e in found)}: "
            "say which with --threat."
        )
    return found[0]


def entry_for_file(path: Path, threat: str | None = None) -> ZooEntry | None:
    """The entry a file is named after (`Carmon2019Unlabeled.pt`), for the threat of robustbench's
    folder (`models/cifar10/Linf/...`) or else `threat`; None for any other name."""
    if not any(entry.name == path.stem for entry in ZOO):
        return None
    return zoo_entry(path.stem, _FOLDERS.get(path.parent.name.lower(), threat))

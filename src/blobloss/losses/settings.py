"""The options of the losses, their defaults and the names of the training losses (no torch needed).

This module is the single home of

* the string options of the losses as ``str`` enums with readable errors (:class:`Criterion`,
  :class:`MaskSpace`, :class:`Implementation`, :class:`ClassReduction`, :func:`parse_option`);
* :class:`CriterionSettings`, the one frozen object that carries the options of the built-in criteria
  (Dice / Tversky smoothing and the Tversky weights) through every loss and helper;
* the paper's defaults (:data:`DEFAULT_ALPHA`, :data:`DEFAULT_BETA`, the Tversky weights 0.3 / 0.7);
* the names of the training losses (:data:`LOSS_NAMES`) and the options each of them accepts in a config's
  loss entry (:func:`loss_config` resolves and validates an entry, :func:`describe_loss_options` gives the
  short text the tables append to a setting's label).

It imports neither torch nor anything of the pipeline, so the workflow can read the defaults and the loss
list when it parses its configuration. Definitions: docs/definitions.md section 2 (blob loss) and
section 3 (inverse weighting).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any, TypeVar

__all__ = [
    "BLOB_LOSSES",
    "DEFAULT_ALPHA",
    "DEFAULT_BETA",
    "IW_CRITERIA",
    "LOSS_NAMES",
    "LOSS_OPTIONS",
    "PLAIN_LOSSES",
    "ClassReduction",
    "Criterion",
    "CriterionSettings",
    "Implementation",
    "MaskSpace",
    "describe_loss_options",
    "loss_config",
    "parse_option",
]

#: Weight of the global term (paper default).
DEFAULT_ALPHA: float = 2.0
#: Weight of the blob term (paper default).
DEFAULT_BETA: float = 1.0


class Criterion(str, Enum):
    """Built-in criteria with a fused (instance-count independent) implementation."""

    DICE = "dice"
    TVERSKY = "tversky"
    BCE = "bce"


class MaskSpace(str, Enum):
    """Where the keep-mask of an instance is applied.

    ``PROBABILITIES`` (paper, default): masked voxels count as p = 0.
    ``LOGITS`` (the authors' published example): the logits are multiplied by the mask, so masked
    voxels count as p = sigmoid(0) = 0.5.
    """

    PROBABILITIES = "probabilities"
    LOGITS = "logits"


class Implementation(str, Enum):
    """How the blob term is computed.

    ``FUSED``: one scatter-add pass over the batch, cost independent of the instance count (built-in
    criteria only). ``LOOP``: one criterion call per instance (any criterion; the reference).
    ``AUTO``: fused for built-in criteria, loop otherwise.
    """

    AUTO = "auto"
    FUSED = "fused"
    LOOP = "loop"


class ClassReduction(str, Enum):
    """How the multi-class blob loss combines the class terms of one batch element.

    ``PAPER`` (default, paper Eq. 3): the sum of the class terms divided by C, the number of foreground
    classes; a class without instances in the element adds 0. ``PRESENT``: the mean over the classes
    that have instances in the element.
    """

    PAPER = "paper"
    PRESENT = "present"


_E = TypeVar("_E", bound=Enum)


def parse_option(value: object, enum_cls: type[_E], name: str) -> _E:
    """Convert a string (or enum member) to ``enum_cls``, with an error listing the allowed values.

    Args:
        value: The user's value, e.g. ``"dice"`` or ``Criterion.DICE``; case-insensitive.
        enum_cls: A ``str`` enum such as :class:`Criterion`.
        name: The argument name shown in the error message.

    Returns:
        The enum member.

    Raises:
        ValueError: If ``value`` is not one of the allowed values.

    Example:
        >>> parse_option("Dice", Criterion, "criterion")
        <Criterion.DICE: 'dice'>
    """
    if isinstance(value, enum_cls):
        return value
    allowed = [m.value for m in enum_cls]  # type: ignore[attr-defined]
    if isinstance(value, str):
        key = value.strip().lower()
        for member in enum_cls:
            if member.value == key:  # type: ignore[attr-defined]
                return member
    raise ValueError(f"{name}={value!r} is not supported; use one of {allowed}.")


def _non_negative(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={value!r} must be a finite number >= 0.")
    return float(value)


@dataclass(frozen=True)
class CriterionSettings:
    """Options of the built-in criteria, shared by every loss (frozen, validated on creation).

    Dice follows MONAI ``DiceLoss`` (``1 - (2 sum(p t) + smooth_nr) / (sum(p) + sum(t) + smooth_dr)``),
    Tversky MONAI ``TverskyLoss`` (``1 - (TP + smooth_nr) / (TP + a FP + b FN + smooth_dr)``). BCE has
    no options.

    Attributes:
        smooth_nr: Added to the Dice / Tversky numerator (MONAI default 1e-5).
        smooth_dr: Added to the Dice / Tversky denominator (MONAI default 1e-5).
        tversky_alpha: Tversky weight of the false positives (paper 0.3).
        tversky_beta: Tversky weight of the false negatives (paper 0.7).

    Raises:
        ValueError: If a value is not a finite number >= 0.

    Example:
        >>> s = CriterionSettings(tversky_alpha=0.5, tversky_beta=0.5)
        >>> s.tversky_alpha, s.smooth_nr
        (0.5, 1e-05)
        >>> CriterionSettings.from_mapping({"smooth_nr": 0}).smooth_nr
        0.0
    """

    smooth_nr: float = 1e-5
    smooth_dr: float = 1e-5
    tversky_alpha: float = 0.3
    tversky_beta: float = 0.7

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _non_negative(getattr(self, f.name), f.name))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, where: str = "criterion") -> CriterionSettings:
        """Build from a mapping such as a config's ``criterion:`` entry (unknown keys are an error).

        Args:
            values: Mapping of field names to numbers; None or empty gives the defaults.
            where: Name of the mapping, shown in the error message.

        Returns:
            The settings.

        Raises:
            ValueError: On an unknown key or a bad value.
        """
        values = dict(values or {})
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ValueError(f"{where} has unknown option(s) {unknown}; allowed: {allowed}.")
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        """The settings as a plain dict (e.g. for a training config)."""
        return asdict(self)


# --------------------------------------------------------------------------------------------------
# Training losses by name and their config options
# --------------------------------------------------------------------------------------------------
#: The blob losses by name, with the options their name fixes.
BLOB_LOSSES: dict[str, dict[str, Any]] = {
    "blob_dice": {"criterion": "dice"},
    "blob_tversky": {"criterion": "tversky"},
    "blob_bce": {"criterion": "bce"},
    "blob_dice_nomask": {"criterion": "dice", "masking": False},  # paper's no-masking ablation
}
#: The losses without an instance term.
PLAIN_LOSSES: tuple[str, ...] = ("dice", "tversky", "bce", "iw")
#: Every training loss name (the config schema's loss list equals this; a test checks it).
LOSS_NAMES: tuple[str, ...] = PLAIN_LOSSES + tuple(BLOB_LOSSES)
#: Weighted criteria of the inverse weighting loss (Shirokikh et al. 2020).
IW_CRITERIA: tuple[str, ...] = ("dice", "bce", "asl")

_CRITERION_FIELDS = {"dice": ("smooth_nr", "smooth_dr"), "tversky": tuple(f.name for f in fields(CriterionSettings))}
_BLOB_OPTIONS = ("alpha", "beta", "mask_space", "masking", "published_running_mean", "implementation", "criterion")

#: The options of a config's loss entry that each loss accepts (besides its ``name``).
LOSS_OPTIONS: dict[str, tuple[str, ...]] = {
    "dice": ("criterion",),
    "tversky": ("criterion",),
    "bce": (),
    "iw": ("iw_criterion",),
    **{name: _BLOB_OPTIONS for name in BLOB_LOSSES},
}


def _criterion_of(name: str) -> str | None:
    if name in BLOB_LOSSES:
        return BLOB_LOSSES[name]["criterion"]
    return name if name in ("dice", "tversky", "bce") else None


def _flag(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"loss option {key}={value!r} must be true or false.")
    return value


def loss_config(name: str, **options: Any) -> dict[str, Any]:
    """The complete, validated loss entry of a training config, every default filled in.

    Options a loss does not accept are an error (naming the option and the losses that take it); options
    left out (or None) get the defaults of the loss module: ``alpha`` 2, ``beta`` 1, ``mask_space``
    ``"probabilities"``, ``masking`` as the name says (False only for ``blob_dice_nomask``),
    ``published_running_mean`` False, ``implementation`` ``"auto"``, ``criterion`` the
    :class:`CriterionSettings` defaults (only the fields the criterion uses), ``iw_criterion`` ``"dice"``.

    Args:
        name: One of :data:`LOSS_NAMES`.
        **options: The entry's options (see :data:`LOSS_OPTIONS`).

    Returns:
        ``{"name": name, <option>: <value>, ...}`` with exactly the options of :data:`LOSS_OPTIONS`\\[name];
        ``criterion`` is a dict of numbers.

    Raises:
        ValueError: On an unknown name, an option the loss does not take, or a bad value.

    Example:
        >>> loss_config("tversky", criterion={"tversky_alpha": 0.5})
        {'name': 'tversky', 'criterion': {'smooth_nr': 1e-05, 'smooth_dr': 1e-05, 'tversky_alpha': 0.5, 'tversky_beta': 0.7}}
        >>> loss_config("blob_dice", mask_space="logits")["mask_space"], loss_config("iw")
        ('logits', {'name': 'iw', 'iw_criterion': 'dice'})
    """
    key = str(name).lower()
    if key not in LOSS_OPTIONS:
        raise ValueError(f"Unknown loss {name!r}; choose one of {list(LOSS_NAMES)}.")
    given = {k: v for k, v in options.items() if v is not None}
    allowed = LOSS_OPTIONS[key]
    wrong = sorted(set(given) - set(allowed))
    if wrong:
        takers = {opt: [n for n, opts in LOSS_OPTIONS.items() if opt in opts] for opt in wrong}
        def where(opt: str) -> str:
            if not takers[opt]:
                return f"{opt!r} is no loss option"
            if all(n.startswith("blob_") for n in takers[opt]) and len(takers[opt]) == len(BLOB_LOSSES):
                return f"{opt!r} applies only to the blob_* losses"
            return f"{opt!r} applies only to {takers[opt]}"

        detail = "; ".join(where(opt) for opt in wrong)
        hint = " (the paper's (1, 0) ablation point is the plain 'dice' loss)" if {"alpha", "beta"} & set(wrong) else ""
        raise ValueError(
            f"loss {key!r} does not take option(s) {wrong}: {detail}; its options are {list(allowed)}{hint}."
        )
    out: dict[str, Any] = {"name": key}
    if key in BLOB_LOSSES:
        fixed = BLOB_LOSSES[key]
        alpha = _non_negative(given.get("alpha", DEFAULT_ALPHA), "alpha")
        beta = _non_negative(given.get("beta", DEFAULT_BETA), "beta")
        if alpha == 0 and beta == 0:
            raise ValueError("alpha and beta are both 0, so the loss would be constant; set one of them > 0.")
        masking = _flag(given.get("masking", fixed.get("masking", True)), "masking")
        if key == "blob_dice_nomask" and masking:
            raise ValueError("loss 'blob_dice_nomask' is the no-masking ablation; masking: true contradicts it "
                             "(use loss 'blob_dice').")
        out.update(
            alpha=alpha,
            beta=beta,
            mask_space=parse_option(given.get("mask_space", MaskSpace.PROBABILITIES), MaskSpace, "mask_space").value,
            masking=masking,
            published_running_mean=_flag(given.get("published_running_mean", False), "published_running_mean"),
            implementation=parse_option(
                given.get("implementation", Implementation.AUTO), Implementation, "implementation"
            ).value,
        )
    if "criterion" in allowed:
        settings = given.get("criterion", {})
        if not isinstance(settings, Mapping):
            raise ValueError(
                f"loss option criterion={settings!r} must be a mapping such as "
                "{tversky_alpha: 0.3, tversky_beta: 0.7, smooth_nr: 1e-5, smooth_dr: 1e-5}."
            )
        crit = _criterion_of(key)
        used = _CRITERION_FIELDS.get(crit or "", ())
        unused = sorted(set(settings) - set(used))
        if unused and set(unused) <= {f.name for f in fields(CriterionSettings)}:
            raise ValueError(f"loss {key!r} ({crit}) does not use criterion option(s) {unused}; it uses {list(used)}.")
        full = CriterionSettings.from_mapping(settings, where=f"loss {key!r} criterion").as_dict()
        if used:
            out["criterion"] = {f: full[f] for f in used}
    if key == "iw":
        choice = str(given.get("iw_criterion", "dice")).strip().lower()
        if choice not in IW_CRITERIA:
            raise ValueError(f"loss option iw_criterion={given['iw_criterion']!r} is not supported; use one of "
                             f"{list(IW_CRITERIA)}.")
        out["iw_criterion"] = choice
    return out


def describe_loss_options(config: Mapping[str, Any]) -> str:
    """Short text of the options of a loss entry that differ from its defaults (empty if none).

    The tables append it to a setting's label, so that e.g. the published code's logit masking is visible.

    Args:
        config: A loss entry (``name`` plus options), e.g. the output of :func:`loss_config`.

    Returns:
        e.g. ``"logit masking, published running mean"``; ``""`` when every option is the default.

    Example:
        >>> describe_loss_options({"name": "blob_dice", "mask_space": "logits", "implementation": "loop"})
        'logit masking, loop'
        >>> describe_loss_options({"name": "iw", "iw_criterion": "bce"}), describe_loss_options({"name": "dice"})
        ('weighted BCE', '')
    """
    cfg = loss_config(**dict(config))
    default = loss_config(cfg["name"])
    parts = []
    if cfg.get("mask_space") != default.get("mask_space"):
        parts.append("logit masking")
    if cfg.get("masking") != default.get("masking"):
        parts.append("no masking" if not cfg["masking"] else "masking")
    if cfg.get("published_running_mean"):
        parts.append("published running mean")
    if cfg.get("implementation") != default.get("implementation"):
        parts.append(str(cfg["implementation"]))
    crit, crit0 = cfg.get("criterion", {}), default.get("criterion", {})
    if crit.get("tversky_alpha") != crit0.get("tversky_alpha") or crit.get("tversky_beta") != crit0.get("tversky_beta"):
        parts.append(f"tversky {crit['tversky_alpha']:g}/{crit['tversky_beta']:g}")
    if crit.get("smooth_nr") != crit0.get("smooth_nr") or crit.get("smooth_dr") != crit0.get("smooth_dr"):
        parts.append(f"smooth {crit['smooth_nr']:g}/{crit['smooth_dr']:g}")
    if cfg.get("iw_criterion") != default.get("iw_criterion"):
        parts.append(f"weighted {cfg['iw_criterion'].upper()}")
    return ", ".join(parts)

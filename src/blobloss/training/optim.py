"""Optimizer factory: Ranger21 (the paper's optimizer), AdamW and SGD.

Ranger21 comes from the maintained ``pytorch_optimizer`` package (``pytorch_optimizer.Ranger21``), not the
original research repository (lessw2020/Ranger21), which is unpackaged and unmaintained.

Learning-rate schedule. The paper keeps the initial learning rate the same *between training runs* (every
loss of a dataset starts from the same lr); it does not switch Ranger21's schedule off. The default
``schedule="ranger21"`` therefore keeps Ranger21's own schedule over ``num_iterations`` = epochs x batches
per epoch (see docs/definitions.md section 7):

* linear warm-up over ``ceil(2 / (1 - beta2))`` = 2000 steps (beta2 = 0.999), or over the first 22 % of the
  run when 2000 steps would exceed 45 % of it;
* constant ``lr`` until 72 % of the run;
* linear warm-down over the last 28 % of the steps to ``min(3e-5, lr)``.

``schedule="constant"`` (``disable_lr_scheduler=True``) keeps ``lr`` for the whole run instead. Both
schedules live inside the optimizer's state, so no scheduler object exists and a checkpoint's optimizer
state restores the position in the schedule.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import torch

__all__ = ["OPTIMIZER_NAMES", "SCHEDULES", "build_optimizer", "build_optimizer_from_config", "current_lr"]

OPTIMIZER_NAMES: tuple[str, ...] = ("ranger21", "adamw", "sgd")
SCHEDULES: tuple[str, ...] = ("ranger21", "constant")
#: Learning rate at the end of Ranger21's warm-down (its own default), capped at the initial lr.
WARM_DOWN_MIN_LR = 3e-5


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: str = "ranger21",
    lr: float = 1e-3,
    weight_decay: float | None = None,
    num_iterations: int | None = None,
    schedule: str | None = None,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """Create an optimizer; Ranger21 with its own warm-up/warm-down schedule by default.

    Args:
        params: Parameters to optimize (``model.parameters()``).
        name: ``"ranger21"`` (paper default), ``"adamw"`` or ``"sgd"`` (Nesterov momentum).
        lr: Learning rate (> 0); the paper uses 1e-2 or 1e-3 depending on the dataset.
        weight_decay: Weight decay; ``None`` takes each optimizer's default (Ranger21 1e-4, AdamW 1e-2,
            SGD 0).
        num_iterations: Total optimizer steps (epochs x batches per epoch). Ranger21 requires it: its
            schedule's warm-up and warm-down are fractions of it.
        schedule: ``"ranger21"`` (Ranger21 only: its built-in linear warm-up and warm-down over
            ``num_iterations``, see the module docstring), ``"constant"`` (``lr`` for every step), or
            ``None`` (default): the optimizer's own, i.e. ``"ranger21"`` for Ranger21 and ``"constant"``
            for AdamW and SGD.
        momentum: SGD momentum.

    Returns:
        The optimizer.

    Raises:
        ValueError: On an unknown name/schedule, ``lr <= 0``, negative weight decay, or a missing
            ``num_iterations`` for Ranger21.

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> opt = build_optimizer(net.parameters(), "ranger21", lr=1e-2, num_iterations=100)
        >>> type(opt).__name__, opt.num_warm_up_iterations, opt.start_warm_down
        ('Ranger21', 22, 72)
    """
    key = str(name).lower()
    if key not in OPTIMIZER_NAMES:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {list(OPTIMIZER_NAMES)}.")
    if not float(lr) > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}.")
    if weight_decay is not None and weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}.")
    if schedule is None:
        schedule = "ranger21" if key == "ranger21" else "constant"
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {schedule!r}; choose one of {list(SCHEDULES)}.")
    lr = float(lr)
    if key == "ranger21":
        if num_iterations is None or int(num_iterations) < 1:
            raise ValueError(
                f"Ranger21 needs num_iterations = epochs * batches per epoch >= 1, got {num_iterations!r}."
            )
        kwargs = {} if weight_decay is None else {"weight_decay": float(weight_decay)}
        from pytorch_optimizer import Ranger21  # imported when used: it loads torch.distributed.tensor (1.5 s)

        return Ranger21(
            params,
            num_iterations=int(num_iterations),
            lr=lr,
            disable_lr_scheduler=(schedule == "constant"),
            warm_down_min_lr=min(WARM_DOWN_MIN_LR, lr),
            **kwargs,
        )
    if schedule != "constant":
        raise ValueError(
            f"schedule={schedule!r} exists only for Ranger21; set optimizer.schedule: constant with {key!r}."
        )
    if key == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=1e-2 if weight_decay is None else float(weight_decay))
    return torch.optim.SGD(
        params, lr=lr, momentum=float(momentum), nesterov=momentum > 0, weight_decay=float(weight_decay or 0.0)
    )


def build_optimizer_from_config(
    params: Iterable[torch.nn.Parameter], opt_cfg: dict, num_iterations: int
) -> torch.optim.Optimizer:
    """Build the optimizer described by the ``optimizer`` section of a training config.

    Args:
        params: Parameters to optimize.
        opt_cfg: Mapping with keys ``name``, ``lr``, and optionally ``weight_decay``, ``schedule``,
            ``momentum``.
        num_iterations: Total optimizer steps of the run (epochs x batches per epoch).

    Returns:
        The optimizer, see :func:`build_optimizer`.

    Example:
        >>> opt = build_optimizer_from_config(
        ...     torch.nn.Linear(2, 1).parameters(), {"name": "adamw", "lr": 1e-3, "schedule": "constant"}, 10)
        >>> current_lr(opt)
        0.001
    """
    allowed = {"name", "lr", "weight_decay", "schedule", "momentum"}
    unknown = set(opt_cfg) - allowed
    if unknown:
        raise ValueError(f"Unknown optimizer config keys {sorted(unknown)}; allowed: {sorted(allowed)}.")
    return build_optimizer(params, num_iterations=num_iterations, **opt_cfg)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """Return the learning rate the optimizer applies now (Ranger21's scheduled value when enabled).

    Example:
        >>> current_lr(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.5))
        0.5
    """
    package = sys.modules.get("pytorch_optimizer")  # loaded only once a Ranger21 has been built
    if package is not None and isinstance(optimizer, package.Ranger21) and not optimizer.disable_lr_scheduler:
        return float(optimizer.current_lr)
    return float(optimizer.param_groups[0]["lr"])

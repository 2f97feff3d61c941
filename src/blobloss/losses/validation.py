"""Input checks shared by every loss: the same fault raises the same exception with the same message.

:class:`~blobloss.losses.BlobLoss`, :class:`~blobloss.losses.MultiClassBlobLoss` and
:class:`~blobloss.losses.InverseWeightingLoss` all call :func:`check_logits` and :func:`check_map` (shapes
and dtypes, no host synchronisation) and :func:`check_values` (NaN/Inf logits, non-whole, negative ids, in
one host synchronisation). Faults and what they raise:

| fault | exception |
|---|---|
| an argument that is not a tensor | ``TypeError`` |
| integer logits | ``TypeError`` |
| a bool (binary label) or complex id map | ``TypeError`` |
| logits with too few axes, the wrong channel count, no voxels | ``ValueError`` |
| an id map whose shape or device differs from what the logits need | ``ValueError`` |
| NaN or Inf in the logits | ``ValueError`` |
| a float id map with non-whole values, negative ids | ``ValueError`` |
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["LIMITED_UINTS", "check_id_dtype", "check_logits", "check_map", "check_values"]

# Unsigned dtypes beyond uint8 have few kernels in torch (no min/max, unique, ...): converted to int64.
LIMITED_UINTS = tuple(getattr(torch, name) for name in ("uint16", "uint32", "uint64") if hasattr(torch, name))

_NAN_LOGITS = (
    "logits contain NaN or Inf; the loss would be NaN. Check the network output (learning rate, mixed "
    "precision overflow, input normalisation)."
)


def _require_tensor(value: object, name: str) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}.")


def check_logits(logits: Tensor, *, multiclass: bool = False) -> None:
    """Check the logits' type and shape: ``(B, 1, *spatial)`` (binary) or ``(B, C + 1, *spatial)``.

    Args:
        logits: Raw network output.
        multiclass: True for softmax outputs (at least 2 channels), False for one sigmoid channel.

    Raises:
        TypeError: If ``logits`` is not a floating point tensor.
        ValueError: On fewer than 3 axes, the wrong number of channels, or no voxels.

    Example:
        >>> check_logits(torch.zeros(2, 1, 4, 4))
        >>> check_logits(torch.zeros(2, 3, 4, 4), multiclass=True)
    """
    _require_tensor(logits, "logits")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating point tensor (raw network output), got {logits.dtype}.")
    layout = "(B, C + 1, *spatial)" if multiclass else "(B, 1, *spatial)"
    if logits.ndim < 3 or logits.ndim > 5:
        raise ValueError(f"logits must have shape {layout} with 1 to 3 spatial axes, got {tuple(logits.shape)}.")
    channels = logits.shape[1]
    if multiclass and channels < 2:
        raise ValueError(
            f"logits {tuple(logits.shape)} have {channels} channel; the multi-class loss needs C + 1 >= 2 softmax "
            "channels (channel 0 = background). For one sigmoid channel use BlobLoss."
        )
    if not multiclass and channels != 1:
        raise ValueError(
            f"logits {tuple(logits.shape)} have {channels} channels, but this loss is binary and needs 1 sigmoid "
            "channel; for several classes use the multi-class blob loss (blobloss.losses.MultiClassBlobLoss)."
        )
    if logits.numel() == 0:
        raise ValueError(f"logits {tuple(logits.shape)} are empty.")


def check_map(value: Tensor, name: str, logits: Tensor) -> Tensor:
    """Check an integer id map (``instances``, ``class_map``, ``weight`` excluded) against the logits.

    The map must have shape ``(B, 1, *spatial)`` matching the logits, lie on their device and hold ids:
    integer tensors, or float tensors of whole numbers (checked by :func:`check_values`).

    Args:
        value: The map.
        name: Its argument name, shown in messages (``"instances"`` or ``"class_map"``).
        logits: Checked logits (see :func:`check_logits`).

    Returns:
        The map, with unsigned dtypes beyond uint8 converted to int64.

    Raises:
        TypeError: If the map is not a tensor, is bool (a binary label) or complex.
        ValueError: On a shape or device mismatch.

    Example:
        >>> check_map(torch.zeros(2, 1, 4, 4, dtype=torch.int32), "instances", torch.zeros(2, 1, 4, 4)).dtype
        torch.int32
    """
    _require_tensor(value, name)
    expected = (logits.shape[0], 1, *logits.shape[2:])
    if tuple(value.shape) != expected:
        hint = ""
        if tuple(value.shape) == (logits.shape[0], *logits.shape[2:]):
            hint = f" (add the channel axis: {name}.unsqueeze(1))"
        raise ValueError(
            f"{name} {tuple(value.shape)} must have shape {expected} (B, 1, *spatial) to match logits "
            f"{tuple(logits.shape)}{hint}."
        )
    if value.device != logits.device:
        raise ValueError(f"{name} is on {value.device} but logits on {logits.device}; move them together.")
    return check_id_dtype(value, name)


def check_id_dtype(value: Tensor, name: str) -> Tensor:
    """Check that an id map's dtype can hold ids (not bool, not complex); convert wide unsigned to int64.

    Args:
        value: The map (any shape).
        name: Its argument name, shown in messages.

    Returns:
        The map, with unsigned dtypes beyond uint8 converted to int64.

    Raises:
        TypeError: If the map is not a tensor, is bool (a binary label) or complex.

    Example:
        >>> check_id_dtype(torch.zeros(3, dtype=torch.int16), "instances").dtype
        torch.int16
    """
    _require_tensor(value, name)
    if value.dtype == torch.bool:
        if name == "instances":
            raise TypeError(
                "instances is a bool tensor (a binary label), but the loss needs instance ids: label the connected "
                "components first, e.g. cc3d.connected_components(label > 0, connectivity=26) or "
                "blobloss.components."
            )
        raise TypeError(f"{name} is a bool tensor; pass the class label map (0 = background, 1..C) as integers.")
    if value.is_complex():
        raise TypeError(f"{name} must hold integer ids, got {value.dtype}.")
    if value.dtype in LIMITED_UINTS:
        value = value.to(torch.int64)
    return value


def _not_whole(t: Tensor) -> Tensor:
    if not t.is_floating_point():
        return torch.zeros((), dtype=torch.float64, device=t.device)
    return (t != torch.trunc(t)).any().to(torch.float64)


def check_values(
    logits: Tensor | None,
    maps: Mapping[str, Tensor],
    extra: Sequence[Tensor] = (),
) -> tuple[dict[str, tuple[float, float]], list[float]]:
    """Value checks in one host synchronisation: finite logits, whole and non-negative ids.

    Args:
        logits: Logits to check for NaN / Inf, or None to skip that check.
        maps: ``{name: id map}`` (checked by :func:`check_map`).
        extra: More 0-d tensors the caller wants read in the same synchronisation.

    Returns:
        ``({name: (min id, max id)}, extra values)``; an empty map gives ``(0, 0)``.

    Raises:
        ValueError: On NaN/Inf logits, a float map with non-whole (or NaN) values, or negative ids.

    Example:
        >>> ranges, _ = check_values(torch.zeros(1, 1, 2, 2), {"instances": torch.tensor([[[[0, 3], [1, 0]]]])})
        >>> ranges
        {'instances': (0.0, 3.0)}
    """
    device = logits.device if logits is not None else next(iter(maps.values())).device
    flags = [torch.zeros((), dtype=torch.float64, device=device)]
    if logits is not None:
        # one pass: a NaN or Inf anywhere makes the sum non-finite. Accumulated in float32 (float64 only for
        # float64 logits: slow on many GPUs), so that float16 logits of a large volume cannot overflow.
        acc = torch.float64 if logits.dtype == torch.float64 else torch.float32
        flags[0] = logits.detach().sum(dtype=acc).to(torch.float64)
    for value in maps.values():
        if value.numel() == 0:
            flags += [torch.zeros((), dtype=torch.float64, device=device)] * 3
            continue
        low, high = torch.aminmax(value.reshape(-1))
        flags += [_not_whole(value), low.to(torch.float64), high.to(torch.float64)]
    flags += [t.to(torch.float64).reshape(()) for t in extra]
    values = torch.stack(flags).tolist()  # the one host sync
    if not math.isfinite(values[0]):
        raise ValueError(_NAN_LOGITS)
    ranges: dict[str, tuple[float, float]] = {}
    for i, name in enumerate(maps):
        not_whole, low, high = values[1 + 3 * i : 4 + 3 * i]
        if not_whole:
            raise ValueError(
                f"{name} is a float tensor with non-integer (or NaN) values; ids must be whole numbers (use "
                "nearest-neighbour interpolation when resampling label maps)."
            )
        if low < 0:
            raise ValueError(f"{name} contains negative ids (min {low:g}); ids must be >= 0, 0 = background.")
        ranges[name] = (low, high)
    return ranges, values[1 + 3 * len(maps) :]

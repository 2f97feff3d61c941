"""Network factory: MONAI BasicUNet (the paper's network) and UNETR (architecture ablation).

The paper (Kofler et al., IPMI 2023, section 3) trains a MONAI ``BasicUNet`` with features
(32, 32, 64, 128, 256, 32), dropout 0.1 and Mish activations; the architecture ablation (Table 2)
uses MONAI ``UNETR``. Both networks output raw logits (no final activation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import UNETR, BasicUNet

__all__ = ["MODEL_NAMES", "build_model", "build_model_from_config", "required_divisor"]

MODEL_NAMES: tuple[str, ...] = ("basicunet", "unetr")

#: Activation names accepted by :func:`build_model` (MONAI ``Act`` factory names, case-insensitive).
_ACTIVATIONS: dict[str, str | tuple] = {
    "mish": "mish",
    "leakyrelu": ("LeakyReLU", {"negative_slope": 0.1, "inplace": True}),
    "relu": "relu",
    "prelu": "prelu",
    "gelu": "gelu",
    "swish": "swish",
}

# UNETR's ViT uses a fixed 16^d patch embedding.
_UNETR_PATCH = 16


def required_divisor(name: str) -> int:
    """Return the number every spatial patch size must be divisible by for network ``name``.

    BasicUNet pools four times (factor 2 each), UNETR embeds 16^d patches: both need multiples of 16.

    Example:
        >>> required_divisor("basicunet")
        16
    """
    _check_name(name)
    return 16


def _check_name(name: str) -> str:
    key = str(name).lower()
    if key not in MODEL_NAMES:
        raise ValueError(f"Unknown model name {name!r}; choose one of {list(MODEL_NAMES)}.")
    return key


def build_model(
    name: str = "basicunet",
    spatial_dims: int = 3,
    in_channels: int = 1,
    out_channels: int = 1,
    features: Sequence[int] = (32, 32, 64, 128, 256, 32),
    dropout: float = 0.1,
    act: str = "mish",
    img_size: Sequence[int] | None = None,
) -> torch.nn.Module:
    """Build a segmentation network that maps ``(B, in_channels, *spatial)`` to logits.

    Args:
        name: ``"basicunet"`` (paper default) or ``"unetr"`` (architecture ablation).
        spatial_dims: 2 or 3.
        in_channels: Number of image channels C.
        out_channels: Number of output channels (1 for the binary blob-loss setting).
        features: BasicUNet's six feature counts (ignored by UNETR).
        dropout: Dropout probability (BasicUNet ``dropout``, UNETR ``dropout_rate``).
        act: Activation of BasicUNet: ``"mish"`` (paper), ``"leakyrelu"`` (MONAI default), ``"relu"``,
            ``"prelu"``, ``"gelu"`` or ``"swish"``. UNETR keeps its own activations.
        img_size: UNETR only, required: the training patch size (one entry per spatial axis, each a
            multiple of 16). Inference windows must have this size too.

    Returns:
        The network (a ``torch.nn.Module``) producing logits ``(B, out_channels, *spatial)``; spatial sizes
        must be multiples of :func:`required_divisor` (16).

    Raises:
        ValueError: On an unknown name/activation, wrong dimensionality or feature count, a dropout outside
            [0, 1), or a missing/invalid UNETR ``img_size``.

    Example:
        >>> net = build_model(features=(4, 4, 8, 8, 16, 4))
        >>> net(torch.zeros(1, 1, 32, 32, 16)).shape
        torch.Size([1, 1, 32, 32, 16])
    """
    key = _check_name(name)
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    for arg, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}.")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}.")

    if key == "basicunet":
        features = tuple(int(f) for f in features)
        if len(features) != 6 or min(features) < 1:
            raise ValueError(
                f"BasicUNet needs 6 positive feature counts, got {features!r}; "
                "the paper uses (32, 32, 64, 128, 256, 32)."
            )
        act_key = str(act).lower()
        if act_key not in _ACTIVATIONS:
            raise ValueError(f"Unknown activation {act!r}; choose one of {sorted(_ACTIVATIONS)}.")
        return BasicUNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            features=features,
            act=_ACTIVATIONS[act_key],
            dropout=float(dropout),
        )

    # UNETR
    if img_size is None:
        raise ValueError("UNETR needs img_size = the training patch size, e.g. img_size=(192, 192, 32).")
    img_size = tuple(int(s) for s in img_size)
    if len(img_size) != spatial_dims or any(s % _UNETR_PATCH or s <= 0 for s in img_size):
        raise ValueError(
            f"UNETR img_size must have {spatial_dims} positive entries divisible by {_UNETR_PATCH}, "
            f"got {img_size!r}; choose a patch size such as {(96,) * spatial_dims}."
        )
    return UNETR(
        in_channels=in_channels,
        out_channels=out_channels,
        img_size=img_size,
        dropout_rate=float(dropout),
        spatial_dims=spatial_dims,
    )


def build_model_from_config(
    model_cfg: dict, spatial_dims: int, in_channels: int, patch_size: Sequence[int]
) -> torch.nn.Module:
    """Build the network described by the ``model`` section of a training config.

    Args:
        model_cfg: Mapping with optional keys ``name``, ``features``, ``dropout``, ``act``, ``out_channels``.
        spatial_dims: 2 or 3.
        in_channels: Number of image channels.
        patch_size: Training patch size (used as UNETR's ``img_size``).

    Returns:
        The network, see :func:`build_model`.

    Example:
        >>> net = build_model_from_config({"features": [4, 4, 8, 8, 16, 4]}, 2, 1, (32, 32))
        >>> net(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """
    allowed = {"name", "features", "dropout", "act", "out_channels"}
    unknown = set(model_cfg) - allowed
    if unknown:
        raise ValueError(f"Unknown model config keys {sorted(unknown)}; allowed: {sorted(allowed)}.")
    kwargs = {k: model_cfg[k] for k in ("name", "features", "dropout", "act", "out_channels") if k in model_cfg}
    if "features" in kwargs:
        kwargs["features"] = tuple(kwargs["features"])
    return build_model(
        spatial_dims=spatial_dims, in_channels=in_channels, img_size=tuple(patch_size), **kwargs
    )

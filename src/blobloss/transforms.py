"""MONAI transforms that add instance maps (connected components) for the blob loss.

The blob loss needs an instance map beside each label (docs/definitions.md section 1). In a MONAI pipeline,
add it *before* any random crop, so that the same crop is applied to image, label and instances and a blob
cut by the crop border keeps its id::

    from monai.transforms import Compose, LoadImaged, EnsureChannelFirstd, RandSpatialCropd
    from blobloss.transforms import ConnectedComponentsd

    train = Compose([
        LoadImaged(keys=["image", "label"]),
        EnsureChannelFirstd(keys=["image", "label"]),
        ConnectedComponentsd(keys="label", instance_key="instances"),
        RandSpatialCropd(keys=["image", "label", "instances"], roi_size=(64, 64, 32), random_size=False),
    ])

then ``BlobLoss()(logits, batch["instances"])``. Only torch, numpy, cc3d and MONAI are imported here.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import cc3d
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

__all__ = ["ConnectedComponents", "ConnectedComponentsd"]

_VALID = {2: (4, 8), 3: (6, 18, 26)}
_DEFAULT = {2: 8, 3: 26}


def _connectivity_table(connectivity: int | Mapping[int, int] | None) -> dict[int, int]:
    """Connectivity per number of spatial dimensions, validated."""
    if connectivity is None:
        return dict(_DEFAULT)
    if isinstance(connectivity, Mapping):
        table = {**_DEFAULT, **{int(k): v for k, v in connectivity.items()}}
    elif isinstance(connectivity, (int, np.integer)) and not isinstance(connectivity, bool):
        dims = [d for d, allowed in _VALID.items() if int(connectivity) in allowed]
        if not dims:
            raise ValueError(f"connectivity={connectivity!r} is not valid; use 6, 18 or 26 (3D) or 4 or 8 (2D).")
        table = {**_DEFAULT, dims[0]: int(connectivity)}
    else:
        raise TypeError(f"connectivity={connectivity!r} must be None, an int or a mapping {{ndim: connectivity}}.")
    for ndim, value in table.items():
        if ndim not in _VALID or value not in _VALID[ndim]:
            raise ValueError(f"connectivity {value!r} for {ndim}D is not valid; use one of {_VALID.get(ndim, ())}.")
    return table


class ConnectedComponents(Transform):
    """Instance map of a channel-first label: the connected components of each class (cc3d).

    Input ``(1, *spatial)`` (2 or 3 spatial axes, MONAI's channel-first layout). With ``per_class=False``
    (default) every non-zero voxel is foreground and the components of ``label > 0`` are numbered ``1..N``
    (the binary blob loss). With ``per_class=True`` each class value's components are numbered separately
    (voxels of different classes never share an instance), ids ``1..N`` unique over all classes (the
    multi-class blob loss: ``MultiClassBlobLoss(logits, instances, class_map=label)``).

    numpy arrays give numpy arrays, tensors give tensors on the input's device; a ``MetaTensor`` keeps its
    metadata (affine, file name, applied operations), so later inverse transforms still work. The output
    dtype is ``int32`` (``int64`` only if ids exceed it).

    Args:
        connectivity: Per spatial dimensionality: 6, 18 or 26 in 3D, 4 or 8 in 2D. An int applies to the
            dimensionality it is valid for (6/18/26: 3D, 4/8: 2D), a mapping ``{3: 6, 2: 4}`` sets both.
            None: 26 in 3D, 8 in 2D (the project's default).
        per_class: Label each class value separately (True) or the foreground as one class (False).

    Raises:
        ValueError: On a bad connectivity, more than one channel, a float label with non-whole values, or
            negative class values.

    Example:
        >>> lab = np.zeros((1, 4, 4), np.uint8)
        >>> lab[0, 0, 0] = lab[0, 1, 1] = 1        # diagonal neighbours
        >>> lab[0, 3, 3] = 2
        >>> ConnectedComponents()(lab)[0].tolist()
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2]]
        >>> int(ConnectedComponents(connectivity=4)(lab).max())
        3
    """

    backend = ["torch", "numpy"]

    def __init__(self, connectivity: int | Mapping[int, int] | None = None, per_class: bool = False) -> None:
        self.connectivity = _connectivity_table(connectivity)
        self.per_class = bool(per_class)

    def _label_numpy(self, label: np.ndarray) -> np.ndarray:
        if label.ndim - 1 not in _VALID or label.shape[0] != 1:
            raise ValueError(
                f"label must be channel-first with one channel and 2 or 3 spatial axes, (1, H, W[, D]), got shape "
                f"{label.shape}; add the channel with EnsureChannelFirstd first, or select one channel."
            )
        data = label[0]
        if data.dtype.kind == "f":
            if not np.all(np.isfinite(data)) or np.any(data != np.round(data)):
                raise ValueError(
                    "label holds non-whole (or NaN) values; an instance map needs integer class ids (resample labels "
                    "with nearest-neighbour interpolation, mode='nearest')."
                )
        elif data.dtype.kind not in "biu":
            raise ValueError(f"label dtype {data.dtype} is not numeric.")
        if data.size and data.dtype.kind in "if" and data.min() < 0:
            raise ValueError(f"label holds negative values (min {data.min()}); class ids must be >= 0.")
        if not self.per_class:
            data = data > 0
        elif data.dtype.kind == "f":
            data = data.astype(np.int64)
        ids = cc3d.connected_components(
            np.ascontiguousarray(data), connectivity=self.connectivity[data.ndim], out_dtype=np.uint64
        )
        top = int(ids.max()) if ids.size else 0
        return ids.astype(np.int32 if top <= np.iinfo(np.int32).max else np.int64)[None]

    def __call__(self, label: Any) -> Any:
        """Instance map of ``label`` (same type and shape as the input).

        Args:
            label: ``(1, *spatial)`` numpy array, torch tensor or MetaTensor.

        Returns:
            ``(1, *spatial)`` instance ids, 0 = background.
        """
        if isinstance(label, torch.Tensor):
            ids = torch.from_numpy(self._label_numpy(label.detach().cpu().numpy())).to(label.device)
            if isinstance(label, MetaTensor):
                out = MetaTensor(ids)
                out.copy_meta_from(label)  # affine, file name, applied operations (for inverse transforms)
                return out
            return ids
        return self._label_numpy(np.asarray(label))


class ConnectedComponentsd(MapTransform):
    """Dictionary version of :class:`ConnectedComponents`: writes the instance map under its own key.

    Args:
        keys: The label key(s) to label.
        instance_key: Output key(s), one per key (default ``"instances"`` for one key, else
            ``"<key>_instances"``). The label itself is left unchanged.
        connectivity: See :class:`ConnectedComponents`.
        per_class: See :class:`ConnectedComponents`.
        allow_missing_keys: Skip keys that are absent instead of raising.

    Raises:
        ValueError: If the number of ``instance_key`` entries differs from the number of keys, or an output
            key equals an input key.

    Example:
        >>> d = {"label": np.array([[[1, 0, 1]]], np.uint8)}
        >>> out = ConnectedComponentsd(keys="label")(d)
        >>> out["instances"].tolist(), out["label"].tolist()
        ([[[1, 0, 2]]], [[[1, 0, 1]]])
    """

    backend = ConnectedComponents.backend

    def __init__(
        self,
        keys: KeysCollection,
        instance_key: str | Sequence[str] | None = None,
        connectivity: int | Mapping[int, int] | None = None,
        per_class: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if instance_key is None:
            out_keys = ["instances"] if len(self.keys) == 1 else [f"{k}_instances" for k in self.keys]
        elif isinstance(instance_key, str):
            out_keys = [instance_key]
        else:
            out_keys = list(instance_key)
        if len(out_keys) != len(self.keys):
            raise ValueError(
                f"instance_key={instance_key!r} gives {len(out_keys)} output key(s) for {len(self.keys)} key(s) "
                f"{list(self.keys)}; give one per key."
            )
        clash = sorted(str(k) for k in set(out_keys) & set(self.keys))
        if clash:
            raise ValueError(f"instance_key {clash} would overwrite the label; choose another output key.")
        self.instance_keys = out_keys
        self.components = ConnectedComponents(connectivity=connectivity, per_class=per_class)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Add the instance map(s) to a copy of ``data``."""
        d = dict(data)
        for key, out_key in self.key_iterator(d, self.instance_keys):
            d[out_key] = self.components(d[key])
        return d

"""Instance maps inside nnU-Net's data loading: a batchgeneratorsv2 transform that appends them to the target.

nnU-Net 2.8 applies its transforms to each sample in the data-loader workers (CPU). The blob trainers put
:class:`InstanceMapTransform` after the augmentation (and after ``RemoveLabelTansform(-1, 0)``), right
before ``DownsampleSegForDSTransform``: it labels the connected components of the augmented patch's
classes with cc3d and appends them as a second segmentation channel, so the deep-supervision downsampling
(nearest) shrinks classes and instance ids together. The GPU step only reads the result.
"""

from __future__ import annotations

import cc3d
import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform, SegOnlyTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform

__all__ = ["InstanceMapTransform", "with_instance_maps"]

_CONNECTIVITY = {2: (4, 8), 3: (6, 18, 26)}
_DEFAULT = {2: 8, 3: 26}


class InstanceMapTransform(SegOnlyTransform):
    """Append the instance map of a ``(1, *spatial)`` class map as channel 1 of the segmentation.

    Instances are the connected components of each class (cc3d on the multi-label map: voxels of different
    classes never share an instance, docs/definitions.md section 1), numbered ``1..N`` over the patch. The
    segmentation dtype is kept when the ids fit (nnU-Net uses int16) and widened to int32 otherwise.

    Args:
        connectivity: Per number of spatial dimensions: 6, 18 or 26 (3D) and 4 or 8 (2D); an int applies to
            the matching dimensionality only. None: 26 in 3D, 8 in 2D.

    Example:
        >>> seg = torch.zeros(1, 4, 6, dtype=torch.int16)
        >>> seg[0, 0, :2], seg[0, 3, 4:], seg[0, 0, 3] = 1, 1, 2
        >>> out = InstanceMapTransform()(segmentation=seg)["segmentation"]
        >>> out.shape, out.dtype, sorted(out[1].unique().tolist())
        (torch.Size([2, 4, 6]), torch.int16, [0, 1, 2, 3])
    """

    def __init__(self, connectivity: int | dict[int, int] | None = None) -> None:
        super().__init__()
        if isinstance(connectivity, dict):
            conn = {**_DEFAULT, **connectivity}
        elif connectivity is None:
            conn = dict(_DEFAULT)
        elif isinstance(connectivity, bool) or not isinstance(connectivity, int):
            raise ValueError(f"connectivity={connectivity!r} must be None, an int or a dict {{ndim: connectivity}}.")
        else:
            dims = [d for d, allowed in _CONNECTIVITY.items() if connectivity in allowed]
            if not dims:
                raise ValueError(
                    f"connectivity={connectivity!r} is not valid; use 6, 18 or 26 (3D) or 4 or 8 (2D)."
                )
            conn = {**_DEFAULT, dims[0]: connectivity}
        for ndim, value in conn.items():
            if ndim not in _CONNECTIVITY or value not in _CONNECTIVITY[ndim]:
                raise ValueError(
                    f"connectivity {value!r} for {ndim}D is not valid; use one of {_CONNECTIVITY.get(ndim, ())}."
                )
        self.connectivity = conn

    def _apply_to_segmentation(self, segmentation: torch.Tensor, **params) -> torch.Tensor:
        if segmentation.ndim not in (3, 4) or segmentation.shape[0] != 1:
            raise ValueError(
                f"InstanceMapTransform expects one class-map channel (1, *spatial) with 2 or 3 spatial axes, got "
                f"{tuple(segmentation.shape)}; it must run before DownsampleSegForDSTransform and after any "
                "transform that moves extra segmentation channels to the image (cascade)."
            )
        classes = np.ascontiguousarray(segmentation[0].numpy())
        if classes.size and int(classes.min()) < 0:
            raise ValueError(
                f"the class map holds negative values (min {int(classes.min())}); InstanceMapTransform must run "
                "after nnU-Net's RemoveLabelTansform(-1, 0)."
            )
        ids = cc3d.connected_components(classes, connectivity=self.connectivity[classes.ndim], out_dtype=np.uint32)
        top = int(ids.max()) if ids.size else 0
        dtype = segmentation.dtype
        if top > torch.iinfo(dtype).max:
            dtype = torch.int32
        instances = torch.from_numpy(ids.astype(np.int64 if dtype == torch.int64 else np.int32)).to(dtype)
        return torch.cat([segmentation.to(dtype), instances[None]], dim=0)


def with_instance_maps(transforms: BasicTransform, connectivity: int | dict[int, int] | None = None) -> ComposeTransforms:
    """Insert :class:`InstanceMapTransform` into nnU-Net's composed training or validation transforms.

    It goes right before ``DownsampleSegForDSTransform`` (deep supervision), or at the end without one.

    Args:
        transforms: What ``nnUNetTrainer.get_training_transforms`` / ``get_validation_transforms`` returned.
        connectivity: See :class:`InstanceMapTransform`.

    Returns:
        A ``ComposeTransforms`` with the instance-map step added.

    Raises:
        TypeError: If ``transforms`` is not a ``ComposeTransforms`` (a trainer that replaced nnU-Net's
            pipeline must add :class:`InstanceMapTransform` itself).
        ValueError: If an instance-map step is already in it.

    Example:
        >>> from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform
        >>> composed = with_instance_maps(ComposeTransforms([RemoveLabelTansform(-1, 0)]))
        >>> [type(t).__name__ for t in composed.transforms]
        ['RemoveLabelTansform', 'InstanceMapTransform']
    """
    if not isinstance(transforms, ComposeTransforms):
        raise TypeError(
            f"expected nnU-Net's ComposeTransforms, got {type(transforms).__name__}; add InstanceMapTransform to "
            "your own pipeline before DownsampleSegForDSTransform."
        )
    steps = list(transforms.transforms)
    if any(isinstance(t, InstanceMapTransform) for t in steps):
        raise ValueError("the transforms already contain an InstanceMapTransform.")
    at = next((i for i, t in enumerate(steps) if isinstance(t, DownsampleSegForDSTransform)), len(steps))
    steps.insert(at, InstanceMapTransform(connectivity))
    return ComposeTransforms(steps)

"""Evaluation metrics (docs/definitions.md sections 5 and 9): volumetric, instance-wise, per component.

* Volumetric -- Dice (DSC), volumetric sensitivity S, volumetric precision P and Surface Dice (SDSC) --
  :func:`volumetric_metrics`: voxel counts and a surfel lookup (:mod:`blobloss.metrics.surface`), equal to
  pymia 0.3.4's metric classes with the spacing set (:func:`reference_volumetric_metrics`, the
  definition, used by the tests and the benchmark) within 1e-9, about 40 times faster.
* Instance-wise -- :func:`match_instances` labels both masks with cc3d at one connectivity (or takes the
  given ground-truth instance ids) and matches the blobs; :func:`instance_metrics` gives the paper's
  TP/FP/FN, IS, IP and F1 (section 2.5: a predicted blob that shares a voxel with the ground truth is a
  TP, one that shares none an FP; a ground-truth blob that shares none with the prediction an FN; so one
  predicted blob over two ground-truth blobs is 1 TP, 0 FN); :func:`blob_table` lists every blob.
* Per component -- :func:`component_metrics`: Dice and Surface Dice inside each ground-truth component's
  Voronoi region, averaged over the components (Jaus et al., AAAI 2025).
* Per case -- :func:`case_metrics` (one row of ``metrics.csv``), :func:`evaluate_case` (the row and the
  per-blob table), :func:`aggregate` (the summary over cases).

Empty cases follow the project's conventions, not pymia's raw sentinels:

=====================================  ===  ===  ===  ====  ===  ===  ==  ========
case                                   DSC  S    P    SDSC  IS   IP   F1  cc_*
=====================================  ===  ===  ===  ====  ===  ===  ==  ========
both empty                             1    NaN  NaN  1     1    1    1   1
ground truth empty, prediction not     0    NaN  0    0     NaN  0    0   0
prediction empty, ground truth not     0    0    NaN  0     0    NaN  0   0
=====================================  ===  ===  ===  ====  ===  ===  ==  ========

(The IoU-rule columns and IS per ground-truth blob follow the IS/IP/F1 columns.)

Compatibility: nothing here calls ``np.in1d`` (removed in NumPy 2.4) or pymia's ``SegmentationEvaluator``
(which does); pymia and SimpleITK are imported only by :func:`reference_volumetric_metrics` and
:func:`to_sitk_image`, and pymia once more for its surfel area table (data, not its metric classes).
"""

from __future__ import annotations

from blobloss._optional import require_extra

require_extra("pipeline", __name__)  # a clear ImportError naming the extra when it is not installed

from blobloss.metrics._checks import check_pair as _check_pair
from blobloss.metrics.case import (
    AGGREGATE_EXTRA_MEAN_COLUMNS,
    AGGREGATE_MEAN_COLUMNS,
    CASE_COLUMNS,
    EXTRA_CASE_COLUMNS,
    aggregate,
    case_metrics,
    evaluate_case,
)
from blobloss.metrics.instances import (
    BLOB_COLUMNS,
    IOU_THRESHOLD,
    MATCHING_RULES,
    InstanceMatch,
    blob_table,
    instance_metrics,
    instance_scores,
    match_instances,
)
from blobloss.metrics.per_component import component_metrics, component_scores, nearest_component
from blobloss.metrics.volumetric import (
    VOLUMETRIC_EMPTY,
    reference_volumetric_metrics,
    to_sitk_image,
    volumetric_metrics,
)

__all__ = [
    "CASE_COLUMNS",
    "EXTRA_CASE_COLUMNS",
    "AGGREGATE_MEAN_COLUMNS",
    "AGGREGATE_EXTRA_MEAN_COLUMNS",
    "BLOB_COLUMNS",
    "IOU_THRESHOLD",
    "MATCHING_RULES",
    "VOLUMETRIC_EMPTY",
    "InstanceMatch",
    "volumetric_metrics",
    "reference_volumetric_metrics",
    "to_sitk_image",
    "match_instances",
    "instance_metrics",
    "instance_scores",
    "blob_table",
    "component_metrics",
    "component_scores",
    "nearest_component",
    "case_metrics",
    "evaluate_case",
    "aggregate",
]

# 2D masks treated as one slice of a volume: 3D connectivities mapped onto the plane.
_PLANAR = {26: 8, 18: 8, 6: 4}


def _resolve_connectivity(connectivity: int | None, ndim: int) -> int:
    """Compatibility shim for ``blobloss.plots.classify_blobs``, which passes 26 for 2D masks too.

    Maps a 3D connectivity onto a 2D mask (26/18 -> 8, 6 -> 4), then validates with the project's one
    rule, :func:`blobloss.components.resolve_connectivity`. New code calls that (and
    :func:`match_instances`) directly.
    """
    from blobloss.components import resolve_connectivity

    if ndim == 2 and connectivity in _PLANAR:
        connectivity = _PLANAR[connectivity]
    return resolve_connectivity(ndim, connectivity)

"""Instance ("blob") matching and the instance-wise metrics (docs/definitions.md section 5).

One implementation, :func:`match_instances`, labels both masks and finds every overlapping pair of
predicted and ground-truth blobs; everything else reads its result:

* the paper's rule (section 2.5; ``any_overlap``): a predicted blob that shares at least one voxel with
  the ground truth is a true positive (TP), one that shares none a false positive (FP); a ground-truth
  blob that shares no voxel with the prediction is a false negative (FN). TP is counted on the predicted
  side and FN on the ground-truth side, so one ground-truth blob split into five predicted pieces counts
  five TPs: with three other ground-truth blobs missed, IS = 5 / (5 + 3) = 0.625.
* IS per ground-truth blob (``instance_sensitivity_gt``): detected ground-truth blobs / all ground-truth
  blobs, 1 / 4 = 0.25 in that example.
* the one-to-one IoU rule (``one_to_one_iou``, as panoptica and the BraTS lesion-wise metrics count): a
  predicted and a ground-truth blob match when their intersection over union is at least 0.5, each blob
  matching at most one other. Above 0.5 a match is unique by construction; at exactly 0.5 (possible with
  given ground-truth instances) pairs are taken in order of decreasing IoU, then ground-truth id, then
  predicted id.

Ground-truth blobs are the connected components of the ground truth at the chosen connectivity, or the
dataset's own instance ids (``gt_instances``; touching nuclei then stay separate blobs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cc3d
import numpy as np
import pandas as pd

from blobloss.metrics._checks import check_given_instances, check_pair, check_spacing, resolve_connectivity

__all__ = [
    "MATCHING_RULES",
    "IOU_THRESHOLD",
    "InstanceMatch",
    "match_instances",
    "instance_scores",
    "instance_metrics",
    "blob_table",
    "BLOB_COLUMNS",
]

#: The blob counting rules of ``evaluation.matching``.
MATCHING_RULES: tuple[str, ...] = ("any_overlap", "one_to_one_iou")
#: IoU a one-to-one match needs.
IOU_THRESHOLD = 0.5

#: Columns of the per-blob table (:func:`blob_table`), in order.
BLOB_COLUMNS: tuple[str, ...] = (
    "kind", "id", "volume_voxels", "volume_physical", "overlap", "iou", "iou_match", "detected", "tp", "outcome",
)

_NAN = float("nan")


@dataclass(frozen=True)
class InstanceMatch:
    """Blobs of a prediction and a ground truth and how they match.

    Blob ``i`` of a side has id ``i`` in its label map and sits at index ``i - 1`` of that side's arrays.

    Attributes:
        pred_labels, gt_labels: Label maps (uint32; 0 = background, blobs ``1..n``), the masks' shape.
        n_pred, n_gt: Number of predicted and ground-truth blobs.
        pred_voxels, gt_voxels: Int64 (n,), voxels per blob.
        pred_overlap, gt_overlap: Bool (n,), whether the blob shares a voxel with the other mask (paper
            rule: a predicted blob with overlap is a TP, a ground-truth blob without is an FN).
        pred_iou, gt_iou: Float64 (n,), the largest IoU of the blob with any blob of the other side.
        pred_match, gt_match: Int64 (n,), the id of the one-to-one IoU >= 0.5 partner, 0 if none.
        pairs: Int64 (P, 3), one row ``(gt id, pred id, shared voxels)`` per overlapping pair.
    """

    pred_labels: np.ndarray
    gt_labels: np.ndarray
    n_pred: int
    n_gt: int
    pred_voxels: np.ndarray
    gt_voxels: np.ndarray
    pred_overlap: np.ndarray
    gt_overlap: np.ndarray
    pred_iou: np.ndarray
    gt_iou: np.ndarray
    pred_match: np.ndarray
    gt_match: np.ndarray
    pairs: np.ndarray

    @property
    def tp(self) -> int:
        """Predicted blobs that overlap the ground truth (paper rule)."""
        return int(np.count_nonzero(self.pred_overlap))

    @property
    def fp(self) -> int:
        """Predicted blobs that overlap no ground truth (paper rule)."""
        return self.n_pred - self.tp

    @property
    def fn(self) -> int:
        """Ground-truth blobs that no prediction overlaps (paper rule)."""
        return self.n_gt - int(np.count_nonzero(self.gt_overlap))

    @property
    def tp_iou(self) -> int:
        """One-to-one IoU >= 0.5 matches."""
        return int(np.count_nonzero(self.gt_match))

    def detected(self, kind: str, matching: str = "any_overlap") -> np.ndarray:
        """Bool per blob of ``kind`` ("gt" or "pred"): detected (gt) or true positive (pred) by the rule."""
        if matching not in MATCHING_RULES:
            raise ValueError(f"matching must be one of {list(MATCHING_RULES)}, got {matching!r}.")
        if kind not in ("gt", "pred"):
            raise ValueError(f"kind must be 'gt' or 'pred', got {kind!r}.")
        if matching == "any_overlap":
            return self.gt_overlap if kind == "gt" else self.pred_overlap
        return (self.gt_match if kind == "gt" else self.pred_match) > 0


# A 2D mask is labelled as a one-slice volume: 8 (4) in the plane is 26 (6) on a single slice.
_AS_VOLUME = {8: 26, 4: 6}


def _label(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """Connected components of a bool mask (uint32, blobs ``1..n`` in C order of their first voxel).

    Works around two faults of cc3d 4.1.1 found by the tests: its 2D 8-connected labelling sometimes
    writes labels into background pixels (so 2D masks go through the 3D code as one slice), and on some
    tiny arrays it raises "cannot be mapped to union-find array" (then SciPy labels them).
    """
    volume = mask[np.newaxis] if mask.ndim == 2 else mask
    conn = _AS_VOLUME.get(connectivity, connectivity) if mask.ndim == 2 else connectivity
    try:
        labels, n = cc3d.connected_components(volume, connectivity=conn, return_N=True, binary_image=True,
                                              out_dtype=np.uint32)
    except RuntimeError:
        from scipy import ndimage

        rank = {6: 1, 18: 2, 26: 3}[conn]
        labels, n = ndimage.label(volume, structure=ndimage.generate_binary_structure(3, rank))
    labels = np.asarray(labels, dtype=np.uint32).reshape(mask.shape)
    return labels, int(n)


def match_instances(
    pred: np.ndarray,
    gt: np.ndarray,
    connectivity: int | None = None,
    gt_instances: np.ndarray | None = None,
) -> InstanceMatch:
    """Label prediction and ground truth into blobs and match them (the one matching of the project).

    Cost: one cc3d pass per mask, one pass over each label map for the blob sizes, and work
    proportional to the overlapping voxels; no loop over blobs.

    Args:
        pred: Binary prediction, shape (Y, X) or (Z, Y, X); bool or 0/1 values.
        gt: Binary ground truth, same shape.
        connectivity: 6, 18 or 26 for 3D masks, 4 or 8 for 2D masks; None = 26 in 3D, 8 in 2D
            (:func:`blobloss.components.resolve_connectivity`).
        gt_instances: Optional instance ids of the ground truth (0 = background; foreground equal to
            ``gt``). Given, they are the ground-truth blobs instead of ``gt``'s connected components.

    Returns:
        The :class:`InstanceMatch`.

    Raises:
        ValueError: On non-binary or mismatched masks, an invalid connectivity, or instance ids that do not
            cover exactly the ground truth.

    Example:
        >>> gt = np.zeros((1, 5, 9), bool); gt[0, 1:4, 1:4] = True; gt[0, 1:4, 5:8] = True
        >>> pred = np.zeros_like(gt); pred[0, 2, 2:7] = True   # one blob over both GT blobs
        >>> m = match_instances(pred, gt)
        >>> m.n_gt, m.n_pred, m.tp, m.fp, m.fn, m.tp_iou
        (2, 1, 1, 0, 0, 0)
    """
    pred_b, gt_b = check_pair(pred, gt)
    conn = resolve_connectivity(pred_b.ndim, connectivity)
    pred_labels, n_pred = _label(pred_b, conn)
    if gt_instances is None:
        gt_labels, n_gt = _label(gt_b, conn)
    else:
        gt_labels, n_gt = check_given_instances(gt_instances, gt_b)

    # blob sizes from the foreground voxels only (a bincount over the whole map would widen it to int64)
    pred_voxels = np.bincount(pred_labels[pred_b], minlength=n_pred + 1)[1:].astype(np.int64)
    gt_voxels = np.bincount(gt_labels[gt_b], minlength=n_gt + 1)[1:].astype(np.int64)

    overlap_idx = np.flatnonzero(pred_b & gt_b)
    pair_key = gt_labels.ravel()[overlap_idx].astype(np.int64) * (n_pred + 1) + pred_labels.ravel()[overlap_idx]
    keys, shared = np.unique(pair_key, return_counts=True)
    g_id, p_id = np.divmod(keys, n_pred + 1)
    pairs = np.stack([g_id, p_id, shared.astype(np.int64)], axis=1) if len(keys) else np.zeros((0, 3), np.int64)

    pred_overlap = np.zeros(n_pred, dtype=bool)
    pred_overlap[p_id - 1] = True
    gt_overlap = np.zeros(n_gt, dtype=bool)
    gt_overlap[g_id - 1] = True

    iou = shared / (gt_voxels[g_id - 1] + pred_voxels[p_id - 1] - shared) if len(keys) else np.zeros(0)
    pred_iou = np.zeros(n_pred)
    np.maximum.at(pred_iou, p_id - 1, iou)
    gt_iou = np.zeros(n_gt)
    np.maximum.at(gt_iou, g_id - 1, iou)

    pred_match = np.zeros(n_pred, dtype=np.int64)
    gt_match = np.zeros(n_gt, dtype=np.int64)
    candidates = np.flatnonzero(iou >= IOU_THRESHOLD)
    order = candidates[np.lexsort((p_id[candidates], g_id[candidates], -iou[candidates]))]
    for k in order:  # IoU > 0.5 pairs are disjoint already; the loop only settles exact 0.5 ties
        g, p = g_id[k], p_id[k]
        if gt_match[g - 1] == 0 and pred_match[p - 1] == 0:
            gt_match[g - 1] = p
            pred_match[p - 1] = g

    return InstanceMatch(
        pred_labels=pred_labels, gt_labels=gt_labels, n_pred=n_pred, n_gt=n_gt,
        pred_voxels=pred_voxels, gt_voxels=gt_voxels, pred_overlap=pred_overlap, gt_overlap=gt_overlap,
        pred_iou=pred_iou, gt_iou=gt_iou, pred_match=pred_match, gt_match=gt_match, pairs=pairs,
    )


def instance_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """IS, IP and F1 from blob counts, with the empty-case conventions of docs/definitions.md section 5.

    ``tp + fn`` is 0 iff the ground truth has no blob and ``tp + fp`` is 0 iff the prediction has none:
    both empty gives 1, 1, 1; an undefined ratio is NaN; F1 is 0 whenever TP is 0 otherwise.

    Example:
        >>> instance_scores(3, 1, 1)
        {'instance_sensitivity': 0.75, 'instance_precision': 0.75, 'f1': 0.75}
    """
    gt_empty = tp + fn == 0
    pred_empty = tp + fp == 0
    if gt_empty and pred_empty:
        return {"instance_sensitivity": 1.0, "instance_precision": 1.0, "f1": 1.0}
    sens = _NAN if gt_empty else tp / (tp + fn)
    prec = _NAN if pred_empty else tp / (tp + fp)
    f1 = 0.0 if tp == 0 else 2.0 * sens * prec / (sens + prec)
    return {"instance_sensitivity": float(sens), "instance_precision": float(prec), "f1": float(f1)}


def _match_scores(match: InstanceMatch) -> dict[str, float | int]:
    """Every instance column of a case: the paper's, IS per ground-truth blob, and the IoU rule's."""
    row: dict[str, float | int] = {"tp": match.tp, "fp": match.fp, "fn": match.fn}
    row.update(instance_scores(match.tp, match.fp, match.fn))
    detected_gt = int(np.count_nonzero(match.gt_overlap))
    # per ground-truth blob: detected / all, with the same empty conventions as IS
    row["instance_sensitivity_gt"] = instance_scores(detected_gt, match.n_pred, match.n_gt - detected_gt)[
        "instance_sensitivity"
    ]
    tp_iou = match.tp_iou
    iou = instance_scores(tp_iou, match.n_pred - tp_iou, match.n_gt - tp_iou)
    row.update({
        "tp_iou": tp_iou,
        "fp_iou": match.n_pred - tp_iou,
        "fn_iou": match.n_gt - tp_iou,
        "instance_sensitivity_iou": iou["instance_sensitivity"],
        "instance_precision_iou": iou["instance_precision"],
        "f1_iou": iou["f1"],
        "gt_blobs": match.n_gt,
        "pred_blobs": match.n_pred,
    })
    return row


def instance_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    connectivity: int | None = None,
    gt_instances: np.ndarray | None = None,
) -> dict[str, float | int]:
    """Instance-wise TP/FP/FN, sensitivity, precision and F1 by the paper's rule (section 2.5).

    A predicted blob that shares at least one voxel with the ground truth is a TP, one that shares none
    an FP; a ground-truth blob that shares no voxel with the prediction is an FN (:func:`match_instances`).

    Args:
        pred: Binary prediction, shape (Y, X) or (Z, Y, X); bool or 0/1 values.
        gt: Binary ground truth, same shape as ``pred``.
        connectivity: 6, 18 or 26 for 3D masks; 4 or 8 for 2D masks; None = 26 in 3D, 8 in 2D.
        gt_instances: Optional ground-truth instance ids used as the ground-truth blobs.

    Returns:
        ``{"tp", "fp", "fn"}`` as ints and ``{"instance_sensitivity", "instance_precision", "f1"}`` as
        floats, with IS = TP / (TP + FN), IP = TP / (TP + FP), F1 = 2 IS IP / (IS + IP); empty cases use
        the conventions of :func:`instance_scores`.

    Raises:
        ValueError: On non-binary masks, masks that are not 2D/3D, different shapes, or an unsupported
            connectivity.

    Example:
        >>> gt = np.zeros((1, 5, 9), bool); gt[0, 1:4, 1:4] = True; gt[0, 1:4, 5:8] = True
        >>> pred = np.zeros_like(gt); pred[0, 2, 2:7] = True   # one blob over both GT blobs
        >>> m = instance_metrics(pred, gt)
        >>> m["tp"], m["fp"], m["fn"], m["f1"]
        (1, 0, 0, 1.0)
    """
    match = match_instances(pred, gt, connectivity=connectivity, gt_instances=gt_instances)
    return {"tp": match.tp, "fp": match.fp, "fn": match.fn, **instance_scores(match.tp, match.fp, match.fn)}


def blob_table(
    match: InstanceMatch,
    spacing: Sequence[float] | None = None,
    matching: str = "any_overlap",
) -> pd.DataFrame:
    """One row per ground-truth and per predicted blob (the per-blob table of the metrics stage).

    Args:
        match: The result of :func:`match_instances`.
        spacing: Voxel size per array axis; ``volume`` = voxels x the product of the spacing (None: 1.0).
        matching: The rule behind ``detected`` and ``outcome`` ("any_overlap", the paper's, or
            "one_to_one_iou").

    Returns:
        A DataFrame with the columns :data:`BLOB_COLUMNS`: ``kind`` ("gt" or "pred"), ``id`` (its id in
        the label map), ``volume_voxels``, ``volume_physical`` (voxels x voxel volume), ``overlap`` (shares
        a voxel with the other mask), ``iou`` (largest IoU with a blob of the other side), ``iou_match``
        (one-to-one IoU >= 0.5 match), ``detected`` (by ``matching``: a detected ground-truth blob, a
        true-positive predicted blob), ``tp`` (predicted rows: the same flag; empty for ground-truth rows)
        and ``outcome`` ("TP" or "FN" for ground-truth blobs, "TP" or "FP" for predicted ones).
        Ground-truth rows come first.

    Example:
        >>> gt = np.zeros((1, 4, 8), bool); gt[0, 1:3, 1:3] = True
        >>> pred = np.zeros_like(gt); pred[0, 1:3, 2:3] = True; pred[0, 3, 6] = True
        >>> blob_table(match_instances(pred, gt), spacing=(2.0, 1.0, 1.0))[["kind", "volume_physical", "outcome"]].values.tolist()
        [['gt', 8.0, 'TP'], ['pred', 4.0, 'TP'], ['pred', 2.0, 'FP']]
    """
    ndim = match.gt_labels.ndim
    unit = float(np.prod(check_spacing(spacing, ndim)))
    frames = []
    for kind, n, voxels, overlap, iou, partner, positive, negative in (
        ("gt", match.n_gt, match.gt_voxels, match.gt_overlap, match.gt_iou, match.gt_match, "TP", "FN"),
        ("pred", match.n_pred, match.pred_voxels, match.pred_overlap, match.pred_iou, match.pred_match, "TP", "FP"),
    ):
        detected = match.detected(kind, matching)
        frames.append(pd.DataFrame({
            "kind": kind,
            "id": np.arange(1, n + 1, dtype=np.int64),
            "volume_voxels": voxels,
            "volume_physical": voxels * unit,
            "overlap": overlap,
            "iou": iou,
            "iou_match": partner > 0,
            "detected": detected,
            "tp": detected if kind == "pred" else np.full(n, None, dtype=object),
            "outcome": np.where(detected, positive, negative),
        }))
    return pd.concat(frames, ignore_index=True)[list(BLOB_COLUMNS)]

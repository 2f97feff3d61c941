"""Surface elements and Surface Dice without full-volume distance transforms.

The Surface Dice of the project is pymia 0.3.4's ``SurfaceDiceOverlap`` (the method of Nikolov et al.,
2018, as in DeepMind's ``surface-distance``): the surface of a mask lives on the voxel *corners*; a corner
whose 2x2x2 block of voxels is neither all foreground nor all background is a surface element ("surfel")
whose area comes from a 256-entry table indexed by the block's bit pattern (the neighbour code), scaled
by the spacing. A surfel of one mask counts as overlapping when the Euclidean distance (in physical units)
to the nearest surfel of the other mask is at most the tolerance, and

    SDSC = (overlapping area of gt + overlapping area of pred) / (total area of gt + total area of pred).

pymia answers "nearest surfel within the tolerance?" with two distance transforms over the bounding box
of both masks. Here the same question is answered exactly from the surfels alone: the integer corner
offsets ``d`` whose physical length ``sqrt(sum((d_i * s_i)^2))`` (computed in the same floating-point
order as SciPy's distance transform) is at most the tolerance are enumerated once, and a surfel
overlaps when a surfel of the other mask sits at one of those offsets (a lookup in a dense corner grid).
For tolerances that span very many voxels a k-d tree (``scipy.spatial.cKDTree``) replaces the offset
lookup. Cost: a few passes over the bounding box to find the surfels, then work proportional to the
number of surfels, not to the volume.

The same machinery works on *label maps*: the surfels of each label are those of the mask ``labels == k``
and are matched only against surfels of the same label. That gives the per-component Surface Dice of
:mod:`blobloss.metrics.per_component` in one pass for every component.

2D masks are treated as pymia treats them: as a volume one voxel thick (a trailing axis of length 1 with
spacing 1.0), so their "surface" includes both faces of the slab.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Surfels",
    "surfel_area_table",
    "tolerance_offsets",
    "extract_surfels",
    "extract_surfel_pair",
    "surfels_within",
    "surface_overlap",
    "surface_dice",
    "as_volume",
]

# Above this many tolerance offsets the lookup switches to a k-d tree (the lookup's work grows with the
# number of offsets, the tree's does not).
_MAX_OFFSETS = 400
# z-slabs of this many corner planes are processed at a time when finding surfels (keeps the working set
# in cache).
_SLAB = 32


# --------------------------------------------------------------------------------------------------
# the surfel area table
# --------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _neighbour_code_normals() -> tuple[np.ndarray, ...]:
    """Per neighbour code (0..255), the surface normals of its triangles (length = area at spacing 1).

    This is the DeepMind ``surface-distance`` table; it is read from pymia 0.3.4, the project's definition
    of Surface Dice, so that the areas are pymia's to the last bit.
    """
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymia's imports touch deprecated SciPy namespaces
            from pymia.evaluation.metric.base import Distances

            empty = np.zeros((1, 1, 1), dtype=np.uint8)
            normals = Distances(empty, empty, (1.0, 1.0, 1.0))._neighbour_code_to_normals
    except ImportError as err:  # pragma: no cover - pymia is a dependency of the pipeline
        raise ImportError(
            f"Surface Dice needs pymia's surfel area table; install it with pip install pymia==0.3.4 ({err})."
        ) from err
    return tuple(np.asarray(n, dtype=np.float64).reshape(-1, 3) for n in normals)


@functools.lru_cache(maxsize=64)
def surfel_area_table(spacing: tuple[float, float, float]) -> np.ndarray:
    """Area of the surface element of each neighbour code, for a 3D voxel spacing.

    Computed exactly as pymia 0.3.4 does it: each triangle normal ``n`` is scaled to
    ``(n0 s1 s2, n1 s0 s2, n2 s0 s1)`` and the lengths are summed per code.

    Args:
        spacing: Voxel size per array axis (3 entries).

    Returns:
        Float64 array of shape (256,).

    Example:
        >>> table = surfel_area_table((1.0, 1.0, 1.0))
        >>> float(table[0]), float(table[255]), round(float(table[1]), 4)   # no surface; one corner voxel
        (0.0, 0.0, 0.2165)
    """
    s0, s1, s2 = (float(s) for s in spacing)
    areas = np.zeros(256, dtype=np.float64)
    for code, normals in enumerate(_neighbour_code_normals()):
        total = 0.0
        for normal in normals:
            scaled = np.array([normal[0] * s1 * s2, normal[1] * s0 * s2, normal[2] * s0 * s1])
            total += np.linalg.norm(scaled)
        areas[code] = total
    areas.setflags(write=False)
    return areas


# --------------------------------------------------------------------------------------------------
# tolerance offsets
# --------------------------------------------------------------------------------------------------
def _physical_length(offsets: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Euclidean length of integer offsets (N, 3) in physical units, in SciPy's floating-point order."""
    scaled = offsets.astype(np.float64) * np.asarray(spacing, dtype=np.float64)
    scaled *= scaled
    return np.sqrt((scaled[:, 0] + scaled[:, 1]) + scaled[:, 2])


def tolerance_offsets(spacing: Sequence[float], tolerance: float, limit: int | None = None) -> np.ndarray | None:
    """Integer corner offsets whose physical length is at most ``tolerance``, nearest first.

    The length is ``sqrt((d0 s0)^2 + (d1 s1)^2 + (d2 s2)^2)``, evaluated in the order SciPy's
    ``distance_transform_edt`` uses, so "within the tolerance" means exactly what it means for pymia.

    Args:
        spacing: Voxel size per array axis (3 entries).
        tolerance: Distance in the spacing's unit (>= 0).
        limit: Return None instead when more than this many offsets would be needed.

    Returns:
        Int64 array (M, 3) sorted by length (the zero offset first), or None past ``limit``.

    Example:
        >>> tolerance_offsets((1.0, 1.0, 1.0), 1.0).tolist()
        [[0, 0, 0], [-1, 0, 0], [0, -1, 0], [0, 0, -1], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    """
    reach = [int(np.floor(tolerance / s)) + 1 for s in spacing]
    n_box = int(np.prod([2 * r + 1 for r in reach]))
    if limit is not None and n_box > 64 * max(limit, 1) + 27:
        return None  # far too many candidates to enumerate; the caller uses the k-d tree
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)
    length = _physical_length(offsets, spacing)
    keep = length <= tolerance
    offsets, length = offsets[keep], length[keep]
    if limit is not None and len(offsets) > limit:
        return None
    order = np.lexsort((offsets[:, 2], offsets[:, 1], offsets[:, 0], length))
    return offsets[order]


# --------------------------------------------------------------------------------------------------
# surfels
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Surfels:
    """Surface elements of a mask or of every label of a label map.

    Attributes:
        corner: Int64 (N,), each surfel's corner as a flat index into the corner grid ``grid``.
        label: (N,) the label whose surface the surfel belongs to (1 for a binary mask).
        area: Float64 (N,), the surfel's area in physical units.
        grid: Shape of the corner grid, one more than the volume along each axis.
    """

    corner: np.ndarray
    label: np.ndarray
    area: np.ndarray
    grid: tuple[int, int, int]

    def coordinates(self) -> np.ndarray:
        """Corner coordinates (N, 3), int64, in the corner grid (corner i of an axis precedes voxel i)."""
        return np.stack(_unravel(self.corner, self.grid), axis=1)

    def reindexed(self, shape: Sequence[int], shift: Sequence[int]) -> np.ndarray:
        """Flat indices of the corners in a grid of ``shape`` whose origin is ``shift`` corners earlier."""
        z, y, x = _unravel(self.corner, self.grid)
        return ((z + int(shift[0])) * int(shape[1]) + (y + int(shift[1]))) * int(shape[2]) + (x + int(shift[2]))


def _unravel(flat: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unravel_index`` for a 3D C-order shape, as int64 arithmetic."""
    plane = int(shape[1]) * int(shape[2])
    z, rest = np.divmod(flat, plane)
    y, x = np.divmod(rest, int(shape[2]))
    return z, y, x


def as_volume(array: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A 3D view of a 2D or 3D array and its 3-entry spacing (2D: a trailing axis of length 1, spacing 1)."""
    if array.ndim == 2:
        return array[:, :, np.newaxis], (float(spacing[0]), float(spacing[1]), 1.0)
    return array, (float(spacing[0]), float(spacing[1]), float(spacing[2]))


def _mixed_corners(padded: np.ndarray) -> np.ndarray:
    """Flat corner-grid indices of the corners whose 2x2x2 block holds more than one value."""
    nz, ny, nx = (n - 1 for n in padded.shape)
    per_plane = ny * nx
    parts = []
    for z0 in range(0, nz, _SLAB):
        block = padded[z0 : min(z0 + _SLAB, nz) + 1]
        hi = np.maximum(block[:, :, :-1], block[:, :, 1:])
        lo = np.minimum(block[:, :, :-1], block[:, :, 1:])
        hi = np.maximum(hi[:, :-1], hi[:, 1:])
        lo = np.minimum(lo[:, :-1], lo[:, 1:])
        hi = np.maximum(hi[:-1], hi[1:])
        lo = np.minimum(lo[:-1], lo[1:])
        parts.append(np.flatnonzero(hi != lo) + z0 * per_plane)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _mixed_bits(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a uint8 volume of bit planes: flat corner indices where some bit varies within the 2x2x2
    block, and which bits vary there (OR of the block XOR AND of the block)."""
    nz, ny, nx = (n - 1 for n in padded.shape)
    per_plane = ny * nx
    corners, bits = [], []
    for z0 in range(0, nz, _SLAB):
        block = padded[z0 : min(z0 + _SLAB, nz) + 1]
        any_ = block[:, :, :-1] | block[:, :, 1:]
        all_ = block[:, :, :-1] & block[:, :, 1:]
        any_ = any_[:, :-1] | any_[:, 1:]
        all_ = all_[:, :-1] & all_[:, 1:]
        mixed = any_[:-1] | any_[1:]
        mixed ^= all_[:-1] & all_[1:]
        flat = mixed.ravel()
        idx = np.flatnonzero(flat != 0)  # nonzero is fastest on bool
        corners.append(idx + z0 * per_plane)
        bits.append(flat[idx])
    return np.concatenate(corners), np.concatenate(bits)


def extract_surfel_pair(gt: np.ndarray, pred: np.ndarray, spacing: Sequence[float]) -> tuple[Surfels, Surfels]:
    """Surfels of two 3D bool masks of the same shape in one pass (faster than two
    :func:`extract_surfels` calls; same result)."""
    if gt.ndim != 3 or gt.shape != pred.shape:
        raise ValueError(f"extract_surfel_pair needs two 3D masks of one shape, got {gt.shape} and {pred.shape}.")
    padded = np.zeros(tuple(n + 2 for n in gt.shape), dtype=np.uint8)
    inner = padded[1:-1, 1:-1, 1:-1]
    np.copyto(inner, gt)
    inner |= pred.view(np.uint8) << 1
    grid = tuple(n + 1 for n in gt.shape)
    table = surfel_area_table(tuple(float(s) for s in spacing))
    corner, bits = _mixed_bits(padded)
    cz, cy, cx = _unravel(corner, grid)
    _, py, px = padded.shape
    base = (cz * py + cy) * px + cx
    block_offsets = np.array([(a * py + b) * px + c for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    values = padded.ravel()[base[:, None] + block_offsets[None, :]]
    out = []
    for bit in (1, 2):
        rows = np.flatnonzero(bits & bit)
        code = np.packbits((values[rows] & bit) != 0, axis=1)[:, 0]
        out.append(Surfels(corner[rows], np.ones(len(rows), dtype=np.uint8), table[code], grid))
    return out[0], out[1]


def extract_surfels(labels: np.ndarray, spacing: Sequence[float]) -> Surfels:
    """Surfels of a 3D mask (bool) or of every nonzero label of a 3D label map.

    Args:
        labels: Bool mask or non-negative integer label map, shape (Z, Y, X); 0 is background. A label's
            surface is that of the mask ``labels == k`` (so two touching labels both have a surface where
            they meet).
        spacing: Voxel size per axis (3 entries), for the surfel areas.

    Returns:
        The :class:`Surfels`, ordered by corner (then label).

    Example:
        >>> cube = np.zeros((3, 3, 3), bool); cube[1, 1, 1] = True
        >>> s = extract_surfels(cube, (1.0, 1.0, 1.0))
        >>> len(s.corner), float(s.area.sum())        # the 8 corners of one voxel, area 8 x sqrt(3)/8
        (8, 1.7320508075688772)
    """
    if labels.ndim != 3:
        raise ValueError(f"extract_surfels needs a 3D array, got shape {labels.shape}; see as_volume for 2D.")
    binary = labels.dtype == np.bool_
    padded = np.zeros(tuple(n + 2 for n in labels.shape), dtype=labels.dtype)
    padded[1:-1, 1:-1, 1:-1] = labels
    grid = tuple(n + 1 for n in labels.shape)
    corner = _mixed_corners(padded)
    table = surfel_area_table(tuple(float(s) for s in spacing))
    if corner.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Surfels(empty, empty.astype(labels.dtype), np.zeros(0, np.float64), grid)

    # the 8 voxels of each corner's block, in the bit order of the neighbour code (weight 128 >> j,
    # i.e. the first voxel is the most significant bit, as np.packbits orders them)
    cz, cy, cx = _unravel(corner, grid)
    _, py, px = padded.shape
    base = (cz * py + cy) * px + cx
    block_offsets = np.array([(a * py + b) * px + c for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    values = padded.ravel()[base[:, None] + block_offsets[None, :]]

    if binary:  # one surface: the foreground
        code = np.packbits(values, axis=1)[:, 0]
        return Surfels(corner, np.ones(len(corner), dtype=np.uint8), table[code], grid)

    corners, labels_out, codes = [], [], []
    for j in range(8):
        lab = values[:, j]
        keep = lab != 0
        for earlier in range(j):  # count each label of a block once
            keep &= values[:, earlier] != lab
        if not keep.any():
            continue
        members = values[keep] == lab[keep][:, None]
        corners.append(corner[keep])
        labels_out.append(lab[keep])
        codes.append(np.packbits(members, axis=1)[:, 0])
    corner_all = np.concatenate(corners)
    label_all = np.concatenate(labels_out)
    code_all = np.concatenate(codes)
    order = np.lexsort((label_all, corner_all))
    return Surfels(corner_all[order], label_all[order], table[code_all[order]], grid)


# --------------------------------------------------------------------------------------------------
# matching surfels within the tolerance
# --------------------------------------------------------------------------------------------------
def _lookup_within(a: Surfels, b: Surfels, offsets: np.ndarray) -> np.ndarray:
    """For each surfel of ``a``: is a surfel of ``b`` with the same label at one of ``offsets``?"""
    reach = np.abs(offsets).max(axis=0)
    shape = tuple(int(g + 2 * r) for g, r in zip(a.grid, reach))
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)

    a_flat, b_flat = a.reindexed(shape, reach), b.reindexed(shape, reach)
    single_label = bool(np.all(b.label == b.label[0])) and bool(np.all(a.label == b.label[0]))
    if single_label:
        grid = np.zeros(int(np.prod(shape)), dtype=bool)
        grid[b_flat] = True
        extra_keys = None
    else:
        max_label = int(max(a.label.max(), b.label.max()))
        dtype = np.uint16 if max_label < np.iinfo(np.uint16).max else np.uint32
        grid = np.zeros(int(np.prod(shape)), dtype=dtype)
        # b is ordered by corner, so a corner with several labels appears in consecutive entries
        first = np.ones(len(b_flat), dtype=bool)
        first[1:] = b_flat[1:] != b_flat[:-1]
        grid[b_flat[first]] = b.label[first]
        extra = ~first
        extra_keys = None
        if extra.any():
            extra_keys = np.sort(b_flat[extra] * (max_label + 1) + b.label[extra].astype(np.int64))
        a_label = a.label.astype(dtype)
        a_label64 = a.label.astype(np.int64)

    hit = np.zeros(len(a_flat), dtype=bool)
    todo = np.arange(len(a_flat))
    for offset in offsets:
        if todo.size == 0:
            break
        target = a_flat[todo] + int(np.dot(offset, strides))
        if single_label:
            found = grid[target]
        else:
            found = grid[target] == a_label[todo]
            if extra_keys is not None:
                keys = target * (max_label + 1) + a_label64[todo]
                pos = np.minimum(np.searchsorted(extra_keys, keys), len(extra_keys) - 1)
                found |= extra_keys[pos] == keys
        hit[todo[found]] = True
        todo = todo[~found]
    return hit


def _tree_within(a: Surfels, b: Surfels, spacing: Sequence[float], tolerance: float) -> np.ndarray:
    """As :func:`_lookup_within`, with a k-d tree over ``b`` (for tolerances spanning many voxels)."""
    from scipy.spatial import cKDTree

    spacing_arr = np.asarray(spacing, dtype=np.float64)
    a_xyz, b_xyz = a.coordinates(), b.coordinates()
    # labels become a fourth coordinate so far apart that surfels of different labels never match
    separation = float(np.linalg.norm(np.asarray(a.grid) * spacing_arr)) + 2.0 * tolerance + 1.0
    tree = cKDTree(np.column_stack([b_xyz * spacing_arr, b.label.astype(np.float64) * separation]))
    _, nearest = tree.query(
        np.column_stack([a_xyz * spacing_arr, a.label.astype(np.float64) * separation]),
        k=1,
        distance_upper_bound=tolerance * (1.0 + 1e-9) + 1e-12,
        workers=-1,
    )
    found = nearest < len(b.corner)
    hit = np.zeros(len(a.corner), dtype=bool)
    idx = np.flatnonzero(found)
    same = b.label[nearest[idx]] == a.label[idx]
    idx = idx[same]
    # decide with the exact length of the integer offset, as the lookup does
    hit[idx] = _physical_length(b_xyz[nearest[idx]] - a_xyz[idx], spacing) <= tolerance
    return hit


def surfels_within(a: Surfels, b: Surfels, spacing: Sequence[float], tolerance: float) -> np.ndarray:
    """Bool (len(a),): whether each surfel of ``a`` has a surfel of ``b`` with the same label within
    ``tolerance`` (physical units, Euclidean).

    Args:
        a, b: Surfels on the same corner grid.
        spacing: Voxel size per axis (3 entries).
        tolerance: Distance in the spacing's unit (>= 0).

    Returns:
        Bool array, one entry per surfel of ``a``.
    """
    if len(a.corner) == 0 or len(b.corner) == 0:
        return np.zeros(len(a.corner), dtype=bool)
    offsets = tolerance_offsets(spacing, tolerance, limit=_MAX_OFFSETS)
    if offsets is None:
        return _tree_within(a, b, spacing, tolerance)
    return _lookup_within(a, b, offsets)


def surface_overlap(
    a: Surfels, b: Surfels, spacing: Sequence[float], tolerance: float, n_labels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per label 0..n_labels: overlapping and total surfel area of ``a`` and of ``b``.

    Returns:
        ``(overlap_a, total_a, overlap_b, total_b)``, each float64 of shape (n_labels + 1,).
    """
    hit_a = surfels_within(a, b, spacing, tolerance)
    hit_b = surfels_within(b, a, spacing, tolerance)
    size = n_labels + 1

    def sums(s: Surfels, hit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lab = s.label.astype(np.int64)
        return (np.bincount(lab, weights=np.where(hit, s.area, 0.0), minlength=size)[:size],
                np.bincount(lab, weights=s.area, minlength=size)[:size])

    overlap_a, total_a = sums(a, hit_a)
    overlap_b, total_b = sums(b, hit_b)
    return overlap_a, total_a, overlap_b, total_b


def surface_dice(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], tolerance: float) -> float:
    """Surface Dice of two non-empty bool masks of the same 2D/3D shape (no validation; see
    :func:`blobloss.metrics.volumetric_metrics` for the checked public entry point).

    Both masks are first cropped to the bounding box of their union (results do not depend on it).

    Example:
        >>> gt = np.zeros((8, 8, 8), bool); gt[2:6, 2:6, 2:6] = True
        >>> surface_dice(gt, gt, (1.0, 1.0, 1.0), 1.0)
        1.0
    """
    union = pred | gt
    box = tuple(
        slice(int(idx[0]), int(idx[-1]) + 1)
        for idx in (np.flatnonzero(union.any(axis=tuple(j for j in range(union.ndim) if j != i)))
                    for i in range(union.ndim))
    )
    pred_v, spacing3 = as_volume(pred[box], spacing)
    gt_v, _ = as_volume(gt[box], spacing)
    s_gt, s_pred = extract_surfel_pair(gt_v, pred_v, spacing3)
    overlap_gt, total_gt, overlap_pred, total_pred = surface_overlap(s_gt, s_pred, spacing3, tolerance, 1)
    return float((overlap_gt[1] + overlap_pred[1]) / (total_gt[1] + total_pred[1]))

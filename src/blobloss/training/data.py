"""Training data: cached cases, foreground-centred random crops, epoch-aware seeding, DataLoaders.

One item of :class:`CropDataset` is one *case*; it yields ``crops_per_case`` crops of ``patch_size``. A
DataLoader batch of ``batch_size`` cases therefore holds ``batch_size * crops_per_case`` crops, and one
epoch is one pass over all training cases (``ceil(cases / batch_size)`` batches), as in the paper.

Crop sampling (per crop): with probability ``foreground_prob`` (0.95) the crop is centred on a voxel drawn
uniformly from the case's foreground (instance map > 0) and then shifted, if needed, to lie inside the
volume (the chosen voxel stays inside the crop); otherwise the crop's corner is drawn uniformly from all
valid positions. Cases without foreground always get uniform crops. The instance map is cropped with the
image, so instance ids of the full volume are kept (a blob cut by the border stays one instance).

Padding: a volume smaller than the patch along an axis is an error (a mostly padded crop trains on
nothing real) unless ``pad_to_patch=True`` (the config's ``training.pad_to_patch``): it is then zero-padded
(image and instance map, evenly on both sides) once, when the case is cached, with a warning.

Seeding: every case draw uses its own ``numpy.random.Generator`` seeded from ``(seed, epoch, case index)``
(the DataLoader passes ``(epoch, index)`` keys produced in the main process by :class:`EpochSampler` or
:class:`GlobalBatchSampler`), so the crops of an epoch do not depend on the number of workers, on which
worker serves which case, or on whether the run was resumed. The case order of an epoch is a permutation
seeded from ``(seed, epoch)``.

Several ranks (DDP): the *global* batch of ``batch_size`` cases (``batch_size * crops_per_case`` crops) is
the same whatever the number of ranks; :class:`GlobalBatchSampler` gives rank ``r`` of ``W`` the crops
``[r * n // W, (r + 1) * n // W)`` of a batch of ``n`` crops (a case's crops may be split between ranks:
each rank draws the case's crop positions from the same generator and cuts out only its own). Every rank
therefore trains on distinct crops, and the crops of an epoch are those of a one-rank run.

Caching: all cases are read once (through :mod:`blobloss.io`) into memory when the dataset is built, in
the main process; DataLoader workers started by ``fork`` (the Linux default) share those arrays
copy-on-write, so memory does not grow with the number of workers.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from blobloss.data.checks import check_patch_size
from blobloss.io import load_case_image, load_image

__all__ = [
    "CaseData",
    "CropDataset",
    "EpochSampler",
    "GlobalBatchSampler",
    "batches_per_epoch",
    "collate_crops",
    "crop_bounds",
    "load_training_case",
    "make_loader",
]

PathLike = str | os.PathLike[str]

logger = logging.getLogger(__name__)

# Tag mixed into the seed of the per-epoch case permutation, to keep it independent of the crop streams.
_ORDER_TAG = 0x5EED0


@dataclass
class CaseData:
    """One cached training case, already padded to at least the patch size.

    Attributes:
        name: Case name (for error messages).
        image: ``(C, *spatial)`` float32.
        instances: ``(*spatial)`` int32 instance ids (0 = background).
        foreground: Flat (C-order) indices of the foreground voxels of ``instances``.
    """

    name: str
    image: np.ndarray
    instances: np.ndarray
    foreground: np.ndarray


def _case_name(case: Mapping, index: int) -> str:
    if "name" in case:
        return str(case["name"])
    img = case.get("image")
    if isinstance(img, (str, os.PathLike)):
        return Path(img).parent.name or str(img)
    return f"case #{index}"


def load_training_case(case: Mapping, index: int = 0) -> tuple[str, np.ndarray, np.ndarray]:
    """Load one case given as ``dict(image=..., instances=...)`` (paths or arrays).

    Args:
        case: ``image``: path to a case image (read with :func:`blobloss.io.load_case_image`) or a
            ``(C, *spatial)`` array; ``instances``: path to the instance map or a ``(*spatial)`` integer
            array; optional ``name``.
        index: Position of the case in its list (for messages).

    Returns:
        ``(name, image (C, *spatial) float32, instances (*spatial) int32)``.

    Raises:
        ValueError: If a key is missing, the instance map is not integer, or the shapes disagree.

    Example:
        >>> name, img, inst = load_training_case({"image": np.zeros((1, 4, 4), np.float32),
        ...                                      "instances": np.zeros((4, 4), np.uint32), "name": "a"})
        >>> name, img.shape, inst.dtype
        ('a', (1, 4, 4), dtype('int32'))
    """
    if not isinstance(case, Mapping) or "image" not in case or "instances" not in case:
        raise ValueError(
            f"training case #{index} must be a dict with keys 'image' and 'instances' "
            f"(paths or arrays), got {case!r}"
        )
    name = _case_name(case, index)
    img = case["image"]
    if isinstance(img, (str, os.PathLike)):
        image, _ = load_case_image(img)
    else:
        image = np.asarray(img, dtype=np.float32)
    inst = case["instances"]
    instances = load_image(inst).array if isinstance(inst, (str, os.PathLike)) else np.asarray(inst)
    if image.ndim not in (3, 4):
        raise ValueError(
            f"case {name}: image must be (C, *spatial) with 2 or 3 spatial axes, got shape {image.shape}"
        )
    if not np.issubdtype(instances.dtype, np.integer):
        raise ValueError(
            f"case {name}: instance map must be integer (uint32 ids), got dtype {instances.dtype}; "
            "recompute it with blobloss.components"
        )
    if tuple(instances.shape) != tuple(image.shape[1:]):
        raise ValueError(
            f"case {name}: instance map shape {instances.shape} does not match the image's spatial shape "
            f"{image.shape[1:]} (image {image.shape}); recompute the instance map from this case's label"
        )
    if instances.size and int(instances.max()) >= 2**31:
        raise ValueError(f"case {name}: instance id {int(instances.max())} does not fit int32")
    if instances.size and int(instances.min()) < 0:
        raise ValueError(f"case {name}: negative instance id {int(instances.min())}; ids must be >= 0")
    return name, np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(instances, dtype=np.int32)


def _pad_to(
    image: np.ndarray, instances: np.ndarray, patch: Sequence[int], allow: bool = False, name: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad a case smaller than the patch (evenly on both sides); an error unless ``allow``.

    The rule lives in :func:`blobloss.data.checks.check_patch_size` (which warns when padding is allowed).
    """
    spatial = image.shape[1:]
    if all(s >= p for s, p in zip(spatial, patch)):
        return image, instances
    check_patch_size(patch, spatial, divisor=1, pad=allow, case=name)
    pads = []
    for s, p in zip(spatial, patch):
        total = max(p - s, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(image, [(0, 0)] + pads), np.pad(instances, pads)


class CropDataset(Dataset):
    """Cases cached in memory; item ``(epoch, index)`` gives ``crops_per_case`` random crops of a case.

    Args:
        cases: List of ``dict(image=..., instances=...)`` (paths or arrays, see :func:`load_training_case`).
        patch_size: Crop size, one entry per spatial axis.
        crops_per_case: Crops drawn per case and item (K).
        seed: Base seed.
        foreground_prob: Probability that a crop is centred on a foreground voxel (paper: 0.95).
        progress: Log one line per loaded case (logger ``blobloss.training.data``).
        pad_to_patch: Zero-pad cases smaller than ``patch_size`` (with a warning) instead of raising.

    Items:
        ``dataset[(epoch, index)]`` (or ``dataset[index]``, meaning epoch 0) returns a dict with
        ``image``: ``(K, C, *patch_size)`` float32 tensor and ``instances``: ``(K, 1, *patch_size)`` int32
        tensor (full-volume instance ids). The same key always gives the same crops.
        ``dataset[(epoch, index, lo, hi)]`` gives only the crops ``lo..hi-1`` of those K (a rank's share).

    Raises:
        ValueError: On an empty case list, inconsistent channels or dimensionality, a patch size of the
            wrong length, a case smaller than the patch (unless ``pad_to_patch``), ``crops_per_case < 1`` or ``foreground_prob`` outside [0, 1].

    Example:
        >>> inst = np.zeros((20, 20), np.uint32); inst[5:8, 5:8] = 1
        >>> ds = CropDataset([{"image": np.random.rand(1, 20, 20).astype(np.float32), "instances": inst}],
        ...                  patch_size=(32, 16), crops_per_case=3, seed=0)
        >>> item = ds[(0, 0)]
        >>> item["image"].shape, item["instances"].shape
        (torch.Size([3, 1, 32, 16]), torch.Size([3, 1, 32, 16]))
    """

    def __init__(
        self,
        cases: Sequence[Mapping],
        patch_size: Sequence[int],
        crops_per_case: int = 1,
        seed: int = 0,
        foreground_prob: float = 0.95,
        progress: bool = False,
        pad_to_patch: bool = False,
    ) -> None:
        if len(cases) == 0:
            raise ValueError("CropDataset needs at least one case, got an empty list")
        self.patch_size = tuple(int(p) for p in patch_size)
        if any(p < 1 for p in self.patch_size):
            raise ValueError(f"patch_size entries must be >= 1, got {tuple(patch_size)}")
        if int(crops_per_case) < 1:
            raise ValueError(f"crops_per_case must be >= 1, got {crops_per_case!r}")
        if not 0.0 <= float(foreground_prob) <= 1.0:
            raise ValueError(f"foreground_prob must lie in [0, 1], got {foreground_prob!r}")
        self.crops_per_case = int(crops_per_case)
        self.seed = int(seed)
        self.foreground_prob = float(foreground_prob)
        self.cases: list[CaseData] = []
        for i, case in enumerate(cases):
            name, image, instances = load_training_case(case, i)
            if progress:
                logger.info("cached case %d/%d: %s", i + 1, len(cases), name)
            if image.ndim - 1 != len(self.patch_size):
                raise ValueError(
                    f"case {name}: {image.ndim - 1} spatial axes (image {image.shape}) but patch_size "
                    f"{self.patch_size} has {len(self.patch_size)} entries; give one entry per spatial axis"
                )
            if self.cases and image.shape[0] != self.cases[0].image.shape[0]:
                raise ValueError(
                    f"case {name} has {image.shape[0]} channels but case {self.cases[0].name} has "
                    f"{self.cases[0].image.shape[0]}; all cases need the same channels"
                )
            image, instances = _pad_to(image, instances, self.patch_size, pad_to_patch, name)
            fg = np.flatnonzero(instances).astype(np.int64)
            self.cases.append(CaseData(name, image, instances, fg))

    @property
    def in_channels(self) -> int:
        """Number of image channels C."""
        return int(self.cases[0].image.shape[0])

    @property
    def max_instance_id(self) -> int:
        """Largest instance id over all cached cases (0 when no case has foreground)."""
        return max((int(c.instances.max()) if c.instances.size else 0) for c in self.cases)

    @property
    def spatial_dims(self) -> int:
        """Number of spatial axes (2 or 3)."""
        return len(self.patch_size)

    def __len__(self) -> int:
        return len(self.cases)

    def _crop_start(self, case: CaseData, rng: np.random.Generator) -> tuple[int, ...]:
        shape = case.instances.shape
        limits = [s - p for s, p in zip(shape, self.patch_size)]  # >= 0 after padding
        if case.foreground.size and rng.random() < self.foreground_prob:
            centre = np.unravel_index(case.foreground[rng.integers(case.foreground.size)], shape)
            return tuple(
                int(min(max(int(c) - p // 2, 0), lim)) for c, p, lim in zip(centre, self.patch_size, limits)
            )
        return tuple(int(rng.integers(lim + 1)) for lim in limits)

    def crops(
        self, index: int, rng: np.random.Generator, lo: int = 0, hi: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Draw the ``crops_per_case`` crop positions of case ``index`` with ``rng``; cut out crops lo..hi-1.

        Returns:
            ``{"image": (hi - lo, C, *patch) float32, "instances": (hi - lo, 1, *patch) int32}`` tensors
            (``hi`` defaults to K: all crops).
        """
        hi = self.crops_per_case if hi is None else int(hi)
        if not 0 <= lo < hi <= self.crops_per_case:
            raise IndexError(f"crop range [{lo}, {hi}) is not inside [0, {self.crops_per_case})")
        case = self.cases[index]
        images, insts = [], []
        for j in range(hi):
            start = self._crop_start(case, rng)
            if j < lo:
                continue  # drawn (so later crops match a one-rank run) but cut out by another rank
            sl = tuple(slice(s, s + p) for s, p in zip(start, self.patch_size))
            images.append(case.image[(slice(None),) + sl])
            insts.append(case.instances[sl][None])
        return {
            "image": torch.from_numpy(np.stack(images)),
            "instances": torch.from_numpy(np.stack(insts)),
        }

    def __getitem__(self, key: int | tuple[int, ...]) -> dict[str, torch.Tensor]:
        if isinstance(key, (int, np.integer)):
            key = (0, int(key))
        epoch, index = key[0], key[1]
        lo, hi = (int(key[2]), int(key[3])) if len(key) == 4 else (0, None)
        if not 0 <= int(index) < len(self.cases):
            raise IndexError(f"case index {index} out of range for {len(self.cases)} cases")
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        return self.crops(int(index), rng, lo, hi)


class EpochSampler(Sampler):
    """Yield ``(epoch, index)`` keys for one epoch; the order is a permutation seeded from (seed, epoch).

    Call :meth:`set_epoch` before iterating. The keys are created in the main process, so they reach
    persistent workers too (a dataset attribute set in the main process would not).

    Args:
        num_cases: Number of cases.
        seed: Base seed.
        shuffle: Permute the cases each epoch (training) or keep their order (validation).

    Example:
        >>> s = EpochSampler(3, seed=0, shuffle=False); s.set_epoch(5)
        >>> list(s)
        [(5, 0), (5, 1), (5, 2)]
    """

    def __init__(self, num_cases: int, seed: int = 0, shuffle: bool = True) -> None:
        self.num_cases = int(num_cases)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose keys the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_cases

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, _ORDER_TAG]).permutation(self.num_cases)
        else:
            order = np.arange(self.num_cases)
        return iter([(self.epoch, int(i)) for i in order])


def crop_bounds(n_crops: int, rank: int, world_size: int) -> tuple[int, int]:
    """The crops ``[lo, hi)`` of a global batch of ``n_crops`` crops that rank ``rank`` of ``world_size`` gets.

    Example:
        >>> [crop_bounds(5, r, 2) for r in range(2)], crop_bounds(1, 0, 2), crop_bounds(1, 1, 2)
        ([(0, 2), (2, 5)], (0, 0), (0, 1))
    """
    return rank * n_crops // world_size, (rank + 1) * n_crops // world_size


class GlobalBatchSampler(Sampler):
    """Batches of ``(epoch, case, lo, hi)`` keys: one rank's share of each global batch of an epoch.

    The global batch ``b`` of an epoch holds the cases ``order[b * B:(b + 1) * B]`` (``order`` is the
    permutation of :class:`EpochSampler`) and their ``n = cases * K`` crops in order (case by case, crop by
    crop). With ``split="crops"`` (training) rank ``r`` gets the crops :func:`crop_bounds` ``(n, r, W)`` of
    every batch; a rank whose share is empty (a last batch with fewer crops than ranks) gets the batch's
    last crop as a stand-in, which the training step counts with weight 0 (:meth:`share`). With
    ``split="batches"`` (validation) rank ``r`` gets the whole batches ``r, r + W, ...``. With ``W = 1``
    both give the batches of a plain DataLoader over :class:`EpochSampler` with ``batch_size = B``.

    Use it as a DataLoader's ``batch_sampler`` (see :func:`make_loader`); call :meth:`set_epoch` first.

    Args:
        num_cases: Number of cases.
        batch_size: Cases per global batch (B).
        crops_per_case: Crops per case (K).
        seed: Base seed (case order).
        shuffle: Permute the cases each epoch (training) or keep their order (validation).
        rank: This rank (0-based).
        world_size: Number of ranks (W).
        split: ``"crops"`` or ``"batches"``.

    Example:
        >>> s = GlobalBatchSampler(3, batch_size=2, crops_per_case=2, seed=0, shuffle=False, rank=1,
        ...                        world_size=2)
        >>> list(s)
        [[(0, 1, 0, 2)], [(0, 2, 1, 2)]]
        >>> s.share(1)  # batch 1 has 2 crops: rank 1 has crop 1 of them
        (2, 1, 2)
    """

    def __init__(
        self,
        num_cases: int,
        batch_size: int,
        crops_per_case: int,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        split: str = "crops",
    ) -> None:
        if int(batch_size) < 1 or int(crops_per_case) < 1:
            raise ValueError(f"batch_size and crops_per_case must be >= 1, got {batch_size!r}, {crops_per_case!r}")
        if not 0 <= int(rank) < int(world_size):
            raise ValueError(f"rank {rank!r} must lie in [0, world_size={world_size!r})")
        if split not in ("crops", "batches"):
            raise ValueError(f"split must be 'crops' or 'batches', got {split!r}")
        self.order = EpochSampler(num_cases, seed, shuffle)
        self.seed = int(seed)
        self.num_cases = int(num_cases)
        self.batch_size = int(batch_size)
        self.crops_per_case = int(crops_per_case)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.split = split

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.order.set_epoch(epoch)

    @property
    def num_batches(self) -> int:
        """Global batches per epoch: ``ceil(num_cases / batch_size)``."""
        return batches_per_epoch(self.num_cases, self.batch_size)

    def batch_crops(self, b: int) -> int:
        """Number of crops of global batch ``b``."""
        return min(self.batch_size, self.num_cases - b * self.batch_size) * self.crops_per_case

    def share(self, b: int, rank: int | None = None) -> tuple[int, int, int]:
        """``(n, lo, hi)``: the crops of global batch ``b`` and the slice ``[lo, hi)`` of ``rank`` (default: own)."""
        n = self.batch_crops(b)
        lo, hi = crop_bounds(n, self.rank if rank is None else int(rank), self.world_size)
        return n, lo, hi

    def batches(self) -> list[int]:
        """The global batch indices this rank takes part in, in order."""
        if self.split == "batches":
            return list(range(self.rank, self.num_batches, self.world_size))
        return list(range(self.num_batches))

    def __len__(self) -> int:
        return len(self.batches())

    def __iter__(self) -> Iterator[list[tuple[int, int, int, int]]]:
        keys = list(self.order)
        epoch = self.order.epoch
        k = self.crops_per_case
        out = []
        for b in self.batches():
            cases = [idx for _, idx in keys[b * self.batch_size : (b + 1) * self.batch_size]]
            n = len(cases) * k
            lo, hi = (0, n) if self.split == "batches" else crop_bounds(n, self.rank, self.world_size)
            if hi <= lo:  # empty share: the batch's last crop stands in (weight 0 in the step)
                lo, hi = n - 1, n
            batch = []
            for pos, idx in enumerate(cases):
                a, z = max(lo - pos * k, 0), min(hi - pos * k, k)
                if a < z:
                    batch.append((epoch, idx, a, z))
            out.append(batch)
        return iter(out)


def collate_crops(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate the crops of several cases: ``B`` items of ``(K, ...)`` -> ``(B * K, ...)``.

    Example:
        >>> a = {"image": torch.zeros(2, 1, 4, 4), "instances": torch.zeros(2, 1, 4, 4, dtype=torch.int32)}
        >>> collate_crops([a, a])["image"].shape
        torch.Size([4, 1, 4, 4])
    """
    return {key: torch.cat([it[key] for it in items]) for key in items[0]}


def make_loader(
    dataset: CropDataset,
    batch_size: int,
    sampler: EpochSampler | GlobalBatchSampler,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """DataLoader over ``dataset`` with ``batch_size`` cases per batch (all batches kept, none dropped).

    With a :class:`GlobalBatchSampler` the loader yields that sampler's batches (one rank's crops of each
    global batch; ``batch_size`` is then the sampler's).

    Workers are persistent (kept between epochs) when ``num_workers > 0``. The loader gets its own
    ``torch.Generator`` so creating an iterator never consumes the global torch RNG (which drives
    dropout), keeping resumed runs identical to uninterrupted ones.

    Args:
        dataset: The crop dataset.
        batch_size: Cases per batch (each gives ``crops_per_case`` crops).
        sampler: Key sampler (:class:`EpochSampler`) or batch sampler (:class:`GlobalBatchSampler`); call its
            ``set_epoch`` every epoch.
        num_workers: Worker processes (0 = load in the main process).
        pin_memory: Pin batches in page-locked memory (use with CUDA).

    Returns:
        The DataLoader; ``len(loader) == ceil(len(dataset) / batch_size)``.

    Example:
        >>> inst = np.ones((16, 16), np.uint32)
        >>> ds = CropDataset([{"image": np.zeros((1, 16, 16), np.float32), "instances": inst}] * 3, (16, 16), 2)
        >>> loader = make_loader(ds, 2, EpochSampler(len(ds), shuffle=False))
        >>> len(loader), [b["image"].shape[0] for b in loader]
        (2, [4, 2])
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if int(num_workers) < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers!r}")
    if isinstance(sampler, GlobalBatchSampler):
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=int(num_workers),
            collate_fn=collate_crops,
            pin_memory=pin_memory,
            persistent_workers=num_workers > 0,
            generator=torch.Generator().manual_seed(sampler.seed),
        )
    return DataLoader(
        dataset,
        batch_size=int(batch_size),
        sampler=sampler,
        num_workers=int(num_workers),
        collate_fn=collate_crops,
        pin_memory=pin_memory,
        drop_last=False,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(sampler.seed),
    )


def batches_per_epoch(num_cases: int, batch_size: int) -> int:
    """Number of batches in one epoch: ``ceil(num_cases / batch_size)``.

    Example:
        >>> batches_per_epoch(200, 4), batches_per_epoch(41, 6)
        (50, 7)
    """
    return math.ceil(int(num_cases) / int(batch_size))

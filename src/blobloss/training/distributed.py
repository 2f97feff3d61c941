"""Several ranks per training job: start them, connect them, and the few collectives the loop needs.

A training job with ``gpus: K`` starts its K ranks itself (:func:`launch`): the job process forks K
children after it has read and validated the data, so the ranks share the cached cases copy-on-write, and
then only supervises them. Each rank joins one ``torch.distributed`` process group (NCCL on GPUs, one GPU
per rank, ``cuda:<rank>`` of the devices the job was given; gloo on the CPU), rendezvous through a file in
a private temporary folder (no TCP port to collide with another job on the same machine).

Failure handling: when any rank fails or is killed (even ``kill -9``), the job process stops the other
ranks (SIGTERM, then SIGKILL) and raises, so the job ends at once instead of hanging in a collective; the
ranks get SIGKILL from the kernel when the job process itself dies (``PR_SET_PDEATHSIG`` on Linux). A
rerun resumes every rank from the last checkpoint, which only rank 0 writes.

:class:`Dist` describes one rank (``Dist()`` is the single-process case, where every collective is the
identity), so the training loop has one code path for 1 and K ranks.

Example:
    >>> d = Dist()
    >>> d.is_main, d.world_size, float(d.all_reduce_sum(torch.ones(())))
    (True, 1, 1.0)
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist

__all__ = ["Dist", "RankFailedError", "cuda_device_count", "launch"]

logger = logging.getLogger(__name__)

#: Seconds the other ranks get to exit after SIGTERM before SIGKILL, once one rank has failed.
TERMINATE_GRACE_S = 10.0
_PR_SET_PDEATHSIG = 1


class RankFailedError(RuntimeError):
    """A rank of a multi-rank job died without a Python exception (killed by a signal, or os._exit)."""


@dataclass
class Dist:
    """One rank of a training job (or the only process: ``Dist()``).

    Attributes:
        rank: This rank, 0-based; rank 0 writes every file.
        world_size: Number of ranks.
        device: The rank's device (``cuda:<rank>`` with NCCL, CPU with gloo).
        backend: ``"nccl"``, ``"gloo"`` or ``None`` (no process group: one rank).
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group connects several ranks."""
        return self.backend is not None

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks (in place; returned for chaining)."""
        if self.distributed:
            torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
        return tensor

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (``[obj]`` for one rank)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(out, obj)
        return out

    def gather_rows(self, tensor: torch.Tensor, counts: Sequence[int]) -> list[torch.Tensor]:
        """All ranks' first ``counts[r]`` rows of ``tensor`` (dim 0), without autograd; rank order.

        Every rank passes a tensor of the same trailing shape and dtype with at least ``counts[rank]`` rows
        (and at least one); tensors are padded to the largest count for the collective.
        """
        if not self.distributed:
            return [tensor[: counts[0]]]
        rows = max(max(counts), 1)
        local = tensor.detach()
        if local.shape[0] < rows:
            pad = local.new_zeros((rows - local.shape[0],) + tuple(local.shape[1:]))
            local = torch.cat([local, pad])
        local = local[:rows].contiguous()
        out = [torch.empty_like(local) for _ in range(self.world_size)]
        torch_dist.all_gather(out, local)
        return [t[:c] for t, c in zip(out, counts)]

    def barrier(self) -> None:
        """Wait until every rank arrives here."""
        if self.distributed:
            torch_dist.barrier()


def cuda_device_count() -> int:
    """Number of CUDA devices this process may use, without initialising CUDA (fork stays safe).

    Uses PyTorch's NVML-based count (``PYTORCH_NVML_BASED_CUDA_CHECK=1``) for the call, which respects
    ``CUDA_VISIBLE_DEVICES``; 0 on a CPU-only build or when no driver answers.

    Example:
        >>> cuda_device_count() >= 0
        True
    """
    if not torch.backends.cuda.is_built():
        return 0
    if torch.cuda.is_initialized():
        return torch.cuda.device_count()
    old = os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    try:
        return int(torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - no driver / NVML: no usable GPU
        return 0
    finally:
        if old is None:
            del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]
        else:
            os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = old


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); exit if it already has."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - prctl missing
            pass
    if os.getppid() != parent:
        os._exit(1)


def _rank_main(
    fn: Callable[..., Any],
    args: tuple,
    rank: int,
    world_size: int,
    device_type: str,
    folder: str,
    parent: int,
) -> None:
    """Body of one rank process: join the group, run ``fn(dist, *args)``, report result or exception."""
    _die_with_parent(parent)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the job process, which stops the ranks
    if rank > 0:
        logging.getLogger().setLevel(logging.WARNING)  # rank 0 speaks for the job
    out = Path(folder)
    try:
        if device_type == "cuda":
            torch.cuda.set_device(rank)
            device, backend = torch.device("cuda", rank), "nccl"
        else:
            device, backend = torch.device("cpu"), "gloo"
        torch_dist.init_process_group(
            backend, init_method=f"file://{out / 'rendezvous'}", rank=rank, world_size=world_size
        )
        try:
            result = fn(Dist(rank, world_size, device, backend), *args)
        finally:
            torch_dist.destroy_process_group()
        if rank == 0:
            with open(out / "result.pkl", "wb") as fh:
                pickle.dump(result, fh)
    except BaseException as exc:  # noqa: BLE001 - reported to the job process, then exit non-zero
        text = traceback.format_exc()
        try:
            payload = pickle.dumps((exc, text))
        except Exception:  # noqa: BLE001 - unpicklable exception: keep its text
            payload = pickle.dumps((None, text))
        (out / f"error{rank}.pkl").write_bytes(payload)
        sys.stderr.flush()
        os._exit(1)


def launch(
    fn: Callable[..., Any],
    world_size: int,
    device_type: str = "cpu",
    args: tuple = (),
) -> Any:
    """Run ``fn(dist, *args)`` on ``world_size`` forked ranks; return rank 0's result.

    Call it before anything initialises CUDA in this process (the ranks are forked). With
    ``device_type="cuda"`` rank ``r`` uses ``cuda:r`` of the visible devices (NCCL); with ``"cpu"`` every
    rank runs on the CPU (gloo). Each rank runs ``torch.get_num_threads() // world_size`` threads (>= 1).

    Args:
        fn: Called in every rank as ``fn(dist, *args)`` with that rank's :class:`Dist`; rank 0's return
            value must be picklable.
        world_size: Number of ranks (>= 1; 1 still builds a one-rank process group, e.g. to test DDP).
        device_type: ``"cuda"`` or ``"cpu"``.
        args: Extra arguments; passed through ``fork``, so they need not be picklable.

    Returns:
        What ``fn`` returned on rank 0.

    Raises:
        ValueError: On a bad ``world_size``/``device_type``, or more CUDA ranks than visible devices.
        Exception: The exception a rank raised (rank 0's if several did), re-raised here unchanged.
        RankFailedError: When a rank died without an exception (e.g. ``kill -9``); the others were stopped.

    Example:
        >>> def rank_sum(d):
        ...     return float(d.all_reduce_sum(torch.tensor(float(d.rank + 1))))
        >>> launch(rank_sum, 2)  # doctest: +SKIP
        3.0
    """
    if int(world_size) < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size!r}")
    if device_type not in ("cuda", "cpu"):
        raise ValueError(f"device_type must be 'cuda' or 'cpu', got {device_type!r}")
    if device_type == "cuda":
        if torch.cuda.is_initialized():
            raise RuntimeError(
                "CUDA was initialised in this process before the training ranks were forked, and CUDA does "
                "not survive a fork; start the training before any other CUDA work in the process (use "
                "blobloss.training.distributed.cuda_device_count() instead of torch.cuda.is_available())"
            )
        visible = cuda_device_count()
        if visible < world_size:
            raise ValueError(
                f"training.gpus is {world_size} but this job sees {visible} GPU(s) "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); give the job "
                f"{world_size} GPUs (resources gpu={world_size}) or lower training.gpus"
            )
    if "fork" not in multiprocessing.get_all_start_methods():  # pragma: no cover - not Linux/macOS
        raise RuntimeError("several ranks per job need the 'fork' start method (Linux or macOS)")
    ctx = multiprocessing.get_context("fork")
    folder = Path(tempfile.mkdtemp(prefix="blobloss-ddp-"))
    threads = torch.get_num_threads()
    per_rank = max(1, threads // int(world_size))
    torch.set_num_threads(per_rank)  # inherited by the forked ranks
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        for rank in range(int(world_size)):
            p = ctx.Process(
                target=_rank_main,
                args=(fn, tuple(args), rank, int(world_size), device_type, str(folder), os.getpid()),
                name=f"blobloss-rank{rank}",
                daemon=False,  # ranks may start DataLoader workers
            )
            p.start()
            procs.append(p)
        logger.info("started %d ranks (%s, pids %s)", world_size, device_type, [p.pid for p in procs])
        failed = _supervise(procs)
        if failed is None:
            with open(folder / "result.pkl", "rb") as fh:
                return pickle.load(fh)
        _raise_failure(folder, procs, failed)
    finally:
        torch.set_num_threads(threads)
        _stop(procs)
        shutil.rmtree(folder, ignore_errors=True)
    raise AssertionError("unreachable")  # pragma: no cover


def _supervise(procs: list[multiprocessing.process.BaseProcess]) -> int | None:
    """Wait for all ranks; return None when all exited 0, else the rank that failed first."""
    running = {p.sentinel: i for i, p in enumerate(procs)}
    try:
        while running:
            for sentinel in multiprocessing.connection.wait(list(running)):
                rank = running.pop(sentinel)
                procs[rank].join()
                if procs[rank].exitcode != 0:
                    return rank
    except KeyboardInterrupt:
        logger.warning("interrupted: stopping %d ranks", len(procs))
        raise
    return None


def _stop(procs: list[multiprocessing.process.BaseProcess]) -> None:
    """SIGTERM every live rank, then SIGKILL what is left after :data:`TERMINATE_GRACE_S`."""
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.terminate()
    deadline = time.monotonic() + TERMINATE_GRACE_S
    for p in alive:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def _is_collective_error(exc: BaseException | None, text: str) -> bool:
    """True for the errors a rank gets because *another* rank died (a broken collective)."""
    if isinstance(exc, getattr(torch_dist, "DistError", ())):
        return True
    return isinstance(exc, RuntimeError) and any(k in text for k in ("gloo", "NCCL", "Connection reset", "c10d"))


def _raise_failure(folder: Path, procs: list[multiprocessing.process.BaseProcess], failed: int) -> None:
    """Re-raise the exception that caused the failure, else a RankFailedError (a rank died silently).

    The rank that failed first is asked first; an error that only reports a broken collective (the
    consequence of another rank's death) counts only when no rank has a real one.
    """
    _stop(procs)  # the others may block in a collective with the dead rank
    errors = []
    for rank in dict.fromkeys([failed] + list(range(len(procs)))):
        path = folder / f"error{rank}.pkl"
        if path.exists():
            exc, text = pickle.loads(path.read_bytes())
            errors.append((rank, exc, text))
    real = [e for e in errors if not _is_collective_error(e[1], e[2])]
    code = procs[failed].exitcode
    if real or (errors and not (code is not None and code < 0)):
        rank, exc, text = (real or errors)[0]
        logger.error("rank %d failed:\n%s", rank, text)
        if isinstance(exc, BaseException):
            raise exc
        raise RuntimeError(f"rank {rank} failed:\n{text}")
    how = f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exited with {code}"
    raise RankFailedError(
        f"training rank {failed} of {len(procs)} {how}; the other ranks were stopped. Rerun the job: it "
        "resumes every rank from the last checkpoint."
    )

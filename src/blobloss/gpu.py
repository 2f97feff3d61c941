"""One GPU per job on a local machine: a lock-protected slot allocator that sets ``CUDA_VISIBLE_DEVICES``.

Snakemake's ``resources: gpu=1`` together with ``--resources gpu=N`` only limits how many GPU jobs run at
once; it never tells a job *which* GPU to use, so without help every job would land on GPU 0. Each GPU
job therefore wraps its work in :func:`gpu_slot`::

    with gpu_slot():
        train(...)            # sees exactly one GPU, as cuda:0

The allocator takes an exclusive ``fcntl.flock`` on ``<lock_dir>/gpu<i>.lock`` for the first free slot
``i`` and sets ``CUDA_VISIBLE_DEVICES=i`` before anything initialises CUDA. The kernel drops a flock when
its file descriptor closes, so a job that crashes or is killed (even with SIGKILL) frees its slot at once;
no stale lock files need cleaning up.

When a scheduler has already chosen the device (SLURM, Kubernetes and most batch systems set
``CUDA_VISIBLE_DEVICES`` to the job's one GPU) or the machine has no GPU, :func:`gpu_slot` does nothing.
When ``CUDA_VISIBLE_DEVICES`` lists several devices (a user narrowing a local run, e.g. ``2,3``), the
slots are those devices.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

#: Environment variable that overrides the number of GPUs (0 disables the allocator).
ENV_NUM_GPUS = "BLOBLOSS_NUM_GPUS"
#: Environment variable naming the folder of the per-slot lock files.
ENV_LOCK_DIR = "BLOBLOSS_GPU_LOCK_DIR"
#: Variable that selects the visible devices for CUDA (and thereby PyTorch).
CUDA_ENV = "CUDA_VISIBLE_DEVICES"


def default_lock_dir() -> Path:
    """The folder of the per-slot lock files.

    Returns:
        ``$BLOBLOSS_GPU_LOCK_DIR`` when set, else ``<tmpdir>/blobloss-gpu-locks``. Every job that shares
        the machine's GPUs must use the same folder (it must be on a local file system: flock on NFS is
        not reliable across hosts, but a lock only has to work among the jobs of one machine).
    """
    env = os.environ.get(ENV_LOCK_DIR)
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / "blobloss-gpu-locks"


def count_gpus() -> int:
    """Number of GPUs on this machine, without initialising CUDA in this process.

    Returns:
        ``$BLOBLOSS_NUM_GPUS`` when set; else the number of ``GPU ...`` lines of ``nvidia-smi -L``; else 0
        (no ``nvidia-smi``, or it fails, e.g. no driver).

    Raises:
        ValueError: When ``$BLOBLOSS_NUM_GPUS`` is not a non-negative integer.
    """
    env = os.environ.get(ENV_NUM_GPUS)
    if env is not None and env.strip() != "":
        try:
            n = int(env)
        except ValueError:
            n = -1
        if n < 0:
            raise ValueError(
                f"{ENV_NUM_GPUS}={env!r} is not a non-negative integer; set it to the number of GPUs "
                "jobs may use (0 for none) or unset it to ask nvidia-smi"
            )
        return n
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        proc = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        logger.warning("nvidia-smi -L failed (%s); assuming no GPU", err)
        return 0
    if proc.returncode != 0:
        logger.warning("nvidia-smi -L exited with %d; assuming no GPU", proc.returncode)
        return 0
    return sum(1 for line in proc.stdout.splitlines() if line.startswith("GPU "))


def _try_lock(path: Path) -> int | None:
    """Open ``path`` and take a non-blocking exclusive flock; return the descriptor or None if held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def gpu_slot(
    n_gpus: int | None = None,
    lock_dir: str | os.PathLike[str] | None = None,
    poll: float = 0.5,
    timeout: float | None = None,
) -> Iterator[str | None]:
    """Hold one GPU for the duration of the ``with`` block and make it the only visible device.

    Call it before anything initialises CUDA in the process (CUDA reads ``CUDA_VISIBLE_DEVICES`` once).
    The slot's lock is released on exit, and by the kernel when the process dies.

    Args:
        n_gpus: Number of GPU slots (0..n-1). None: :func:`count_gpus` (``$BLOBLOSS_NUM_GPUS``, else
            ``nvidia-smi -L``, else 0).
        lock_dir: Folder of the ``gpu<i>.lock`` files. None: :func:`default_lock_dir`. Created if missing.
        poll: Seconds between attempts while every slot is taken.
        timeout: Give up after this many seconds of waiting (None: wait for ever).

    Yields:
        The value of ``CUDA_VISIBLE_DEVICES`` inside the block: the pre-existing value when a scheduler
        had set it (nothing is locked or changed), None when there is no GPU, else the slot index as a
        string.

    Raises:
        ValueError: When ``n_gpus`` is negative or ``poll`` is not positive.
        TimeoutError: When no slot became free within ``timeout`` seconds.
    """
    preset = os.environ.get(CUDA_ENV)
    listed = [d.strip() for d in preset.split(",") if d.strip()] if preset is not None else []
    if preset is not None and len(listed) <= 1:
        logger.info("%s=%r set by the scheduler; no local GPU slot taken", CUDA_ENV, preset)
        yield preset
        return
    if listed:
        # The user narrowed a local run to several GPUs (e.g. CUDA_VISIBLE_DEVICES=2,3): hand those out.
        devices = listed
    else:
        if n_gpus is None:
            n_gpus = count_gpus()
        if n_gpus < 0:
            raise ValueError(f"n_gpus={n_gpus} is negative; pass the number of GPUs (0 for none) or None")
        if n_gpus == 0:
            logger.info("no GPU found; running on the CPU")
            yield None
            return
        devices = [str(i) for i in range(n_gpus)]
    if poll <= 0:
        raise ValueError(f"poll={poll} must be a positive number of seconds")

    folder = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    waited = False
    fd: int | None = None
    slot = ""
    while fd is None:
        for device in devices:
            fd = _try_lock(folder / f"gpu{device}.lock")
            if fd is not None:
                slot = device
                break
        if fd is not None:
            break
        if timeout is not None and time.monotonic() - start >= timeout:
            raise TimeoutError(
                f"all {len(devices)} GPU slots in {folder} stayed taken for {timeout:g} s; wait for the other "
                f"GPU jobs, raise the timeout, or set {ENV_NUM_GPUS} to the true number of GPUs"
            )
        if not waited:
            logger.info("all %d GPU slots taken; waiting for one to free up", len(devices))
            waited = True
        time.sleep(poll)

    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:  # the pid is only informative
        pass
    os.environ[CUDA_ENV] = slot
    logger.info("GPU slot %s taken (%s=%s, lock %s)", slot, CUDA_ENV, slot, folder / f"gpu{slot}.lock")
    try:
        yield slot
    finally:
        if os.environ.get(CUDA_ENV) == slot:
            if preset is None:
                del os.environ[CUDA_ENV]
            else:
                os.environ[CUDA_ENV] = preset
        os.close(fd)  # releases the flock
        logger.info("GPU slot %s released", slot)

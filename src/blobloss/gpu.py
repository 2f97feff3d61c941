"""K GPUs per job on a local machine: a lock-protected slot allocator that sets ``CUDA_VISIBLE_DEVICES``.

Snakemake's ``resources: gpu=K`` together with ``--resources gpu=N`` only limits how many GPUs the running
jobs hold together; it never tells a job *which* GPUs to use, so without help every job would land on GPU
0. Each GPU job therefore wraps its work in :func:`gpu_slot`::

    with gpu_slot(count=2):
        train(...)            # sees exactly two GPUs, as cuda:0 and cuda:1

The allocator takes an exclusive ``fcntl.flock`` on ``<lock_dir>/gpu<i>.lock`` for ``count`` free slots
and sets ``CUDA_VISIBLE_DEVICES=i,j`` before anything initialises CUDA. A job gets all its slots at once
or none: it tries the slots in one fixed order without waiting, and when fewer than ``count`` are free it
releases what it took and retries after a short randomised pause. No job ever waits while holding a slot,
so 2-GPU and 1-GPU jobs competing for the same GPUs cannot deadlock, and no job starts on a partial set.
The kernel drops a flock when its file descriptor closes, so a job that crashes or is killed (even with
SIGKILL) frees its slots at once; no stale lock files need cleaning up.

When a scheduler has already chosen the devices (SLURM, Kubernetes and most batch systems set
``CUDA_VISIBLE_DEVICES`` to the job's GPUs: at most ``count`` of them) or the machine has no GPU,
:func:`gpu_slot` does nothing. When ``CUDA_VISIBLE_DEVICES`` lists more devices than the job needs (a user
narrowing a local run, e.g. ``2,3,4``), the slots are those devices.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
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


def _release(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)  # releases the flock


def _try_lock_set(folder: Path, devices: list[str], count: int) -> tuple[list[str], list[int]] | None:
    """Lock ``count`` free devices, trying them in the given (fixed) order; all or nothing."""
    taken: list[str] = []
    fds: list[int] = []
    for device in devices:
        fd = _try_lock(folder / f"gpu{device}.lock")
        if fd is None:
            continue
        taken.append(device)
        fds.append(fd)
        if len(taken) == count:
            return taken, fds
    _release(fds)
    return None


@contextlib.contextmanager
def gpu_slot(
    n_gpus: int | None = None,
    lock_dir: str | os.PathLike[str] | None = None,
    poll: float = 0.5,
    timeout: float | None = None,
    count: int = 1,
) -> Iterator[str | None]:
    """Hold ``count`` GPUs for the duration of the ``with`` block and make them the only visible devices.

    Call it before anything initialises CUDA in the process (CUDA reads ``CUDA_VISIBLE_DEVICES`` once).
    The slots' locks are released on exit, and by the kernel when the process dies.

    Args:
        n_gpus: Number of GPU slots (0..n-1). None: :func:`count_gpus` (``$BLOBLOSS_NUM_GPUS``, else
            ``nvidia-smi -L``, else 0).
        lock_dir: Folder of the ``gpu<i>.lock`` files. None: :func:`default_lock_dir`. Created if missing.
        poll: Mean seconds between attempts while fewer than ``count`` slots are free (randomised by
            +-50 % so that competing jobs do not retry in lock step).
        timeout: Give up after this many seconds of waiting (None: wait for ever).
        count: GPUs the job needs (a job with ``training.gpus: K`` asks for K).

    Yields:
        The value of ``CUDA_VISIBLE_DEVICES`` inside the block: the pre-existing value when a scheduler
        had set it (nothing is locked or changed), None when there is no GPU, else the slot indices
        joined by commas (``"0"``, ``"1,2"``).

    Raises:
        ValueError: When ``n_gpus`` is negative, ``count < 1``, the machine has fewer than ``count`` GPUs,
            or ``poll`` is not positive.
        TimeoutError: When no ``count`` slots became free together within ``timeout`` seconds.

    Example:
        >>> import tempfile
        >>> with gpu_slot(n_gpus=4, lock_dir=tempfile.mkdtemp(), count=2) as devices:
        ...     devices, os.environ["CUDA_VISIBLE_DEVICES"]
        ('0,1', '0,1')
    """
    if int(count) < 1:
        raise ValueError(f"count={count} must be >= 1 (the number of GPUs the job needs)")
    count = int(count)
    preset = os.environ.get(CUDA_ENV)
    listed = [d.strip() for d in preset.split(",") if d.strip()] if preset is not None else []
    if preset is not None and len(listed) <= count:
        logger.info("%s=%r set by the scheduler; no local GPU slot taken", CUDA_ENV, preset)
        yield preset
        return
    if listed:
        # The user narrowed a local run to several GPUs (e.g. CUDA_VISIBLE_DEVICES=2,3,4): hand those out.
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
    if len(devices) < count:
        raise ValueError(
            f"the job needs {count} GPUs but this machine has {len(devices)} ({', '.join(devices)}); lower "
            f"training.gpus to {len(devices)} or run the job where {count} GPUs exist"
        )
    if poll <= 0:
        raise ValueError(f"poll={poll} must be a positive number of seconds")

    folder = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    waited = False
    while True:
        got = _try_lock_set(folder, devices, count)
        if got is not None:
            break
        if timeout is not None and time.monotonic() - start >= timeout:
            raise TimeoutError(
                f"{count} of the {len(devices)} GPU slots in {folder} did not become free together within "
                f"{timeout:g} s; wait for the other GPU jobs, raise the timeout, or set {ENV_NUM_GPUS} to the "
                "true number of GPUs"
            )
        if not waited:
            logger.info("fewer than %d of %d GPU slots free; waiting", count, len(devices))
            waited = True
        time.sleep(poll * random.uniform(0.5, 1.5))
    taken, fds = got

    for fd in fds:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:  # the pid is only informative
            pass
    value = ",".join(taken)
    os.environ[CUDA_ENV] = value
    logger.info("GPU slots %s taken (%s=%s, locks in %s)", value, CUDA_ENV, value, folder)
    try:
        yield value
    finally:
        if os.environ.get(CUDA_ENV) == value:
            if preset is None:
                del os.environ[CUDA_ENV]
            else:
                os.environ[CUDA_ENV] = preset
        _release(fds)
        logger.info("GPU slots %s released", value)

"""Logging for pipeline jobs: what a job prints goes to its log file; progress lines also to the console.

Inside :func:`log_to_file`

* logging, warnings, stdout and stderr go to the job's log file, as plain lines (tqdm bars are turned
  off, so a log holds no carriage-return bars);
* :func:`progress` lines (and anything logged under the ``blobloss.progress`` logger) go to the log file
  *and* to the console where the user runs Snakemake (the job's original stderr; on SLURM the job's
  output file), e.g. ``[synthetic3d/dice/seed0/last] predict case 2/4 case_003 4.1 s (elapsed 9 s)``;
* a known error (:class:`blobloss.errors.BlobLossError`: bad data, a config mistake, a missing file)
  ends the job with its message as the last line of the log, without a traceback, and exit status 1;
  every other exception is logged with its traceback and raised again.

:func:`failure_summary` collects those messages from the log files of the failed jobs of a Snakemake
run, for the summary printed at the end of a failed run (the Snakefile's ``onerror``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from os import PathLike
from pathlib import Path

from blobloss.errors import is_known_error

__all__ = ["PROGRESS_LOGGER", "ProgressTimer", "failure_summary", "log_to_file", "progress"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Name of the logger whose records also reach the console while :func:`log_to_file` runs.
PROGRESS_LOGGER = "blobloss.progress"

#: Marker of a known error's message in a job log (the message follows it on the same line).
_ERROR_MARK = "ERROR blobloss: "


def progress(message: str, *args: object) -> None:
    """Report one plain progress line (``%``-style ``args``) to the job log and the user's console.

    Outside :func:`log_to_file` the line goes wherever logging is configured (nowhere by default).

    Example:
        >>> progress("[demo] case %d/%d", 1, 4)  # silent outside a job
    """
    logging.getLogger(PROGRESS_LOGGER).info(message, *args)


class ProgressTimer:
    """Throttles progress lines: :meth:`due` is true for the first and last step and then every ``every_s``.

    Args:
        total: Number of steps.
        every_s: Least seconds between two lines (the last step is always reported).

    Example:
        >>> t = ProgressTimer(total=3, every_s=3600)
        >>> [t.due(i) for i in (1, 2, 3)]
        [True, False, True]
    """

    def __init__(self, total: int, every_s: float = 30.0) -> None:
        self.total = int(total)
        self.every_s = float(every_s)
        self.start = time.monotonic()
        self._last: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the timer was made."""
        return time.monotonic() - self.start

    def due(self, step: int) -> bool:
        """Whether step ``step`` (1-based) should be reported; marks it reported if so."""
        now = time.monotonic()
        if self._last is None or step >= self.total or now - self._last >= self.every_s:
            self._last = now
            return True
        return False


def _silence_tqdm() -> Callable[[], None]:
    """Make every tqdm bar disabled (``disable=True`` whatever the caller passes); returns the undo."""
    try:
        import tqdm.std
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return lambda: None
    cls = tqdm.std.tqdm
    original = cls.__init__

    def __init__(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, N807
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    cls.__init__ = __init__

    def undo() -> None:
        cls.__init__ = original

    return undo


def _plain_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """One line per warning in a job log: ``<Category>: <message>`` (no source line)."""
    return f"{category.__name__}: {message}"


@contextlib.contextmanager
def log_to_file(path: str | PathLike[str]) -> Iterator[logging.Logger]:
    """Send logging, warnings, stdout and stderr to ``path`` while the block runs; progress lines to both.

    A known error (:func:`blobloss.errors.is_known_error`) is written to the log as one line, its message,
    and ends the process with exit status 1 (``SystemExit``), so the user reads the message alone; Ctrl-C
    (``KeyboardInterrupt``) is one line too, exit status 130. Any other exception is written with its
    traceback and raised again.

    Args:
        path: The job's log file (created with its folder; overwritten).

    Yields:
        The ``blobloss`` logger.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "job.log")
        >>> with log_to_file(p) as log:
        ...     log.info("hello")
        >>> "hello" in open(p).read()
        True
    """
    log_path = Path(path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    old_out, old_err = sys.stdout, sys.stderr
    old_tqdm = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    restore_tqdm = _silence_tqdm()  # no carriage-return bars in a log, even where a caller asks for one
    with open(log_path, "w", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter(_FORMAT))
        console = logging.StreamHandler(old_err)
        console.setFormatter(logging.Formatter("%(message)s"))
        prog = logging.getLogger(PROGRESS_LOGGER)
        root = logging.getLogger()
        old_level, old_prog_level = root.level, prog.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        prog.addHandler(console)
        prog.setLevel(logging.INFO)
        logging.captureWarnings(True)
        old_format = warnings.formatwarning
        warnings.formatwarning = _plain_warning
        sys.stdout = sys.stderr = fh
        logger = logging.getLogger("blobloss")
        try:
            yield logger
        except BaseException as exc:
            if is_known_error(exc):
                logger.error("%s", exc)
                raise SystemExit(1) from None
            if isinstance(exc, KeyboardInterrupt):  # Ctrl-C: one line, no traceback on the console
                logger.error("interrupted (Ctrl-C); run the same command again to continue where it stopped")
                raise SystemExit(130) from None
            logger.exception("job failed")
            raise
        finally:
            sys.stdout, sys.stderr = old_out, old_err
            logging.captureWarnings(False)
            warnings.formatwarning = old_format
            root.removeHandler(handler)
            prog.removeHandler(console)
            root.setLevel(old_level)
            prog.setLevel(old_prog_level)
            restore_tqdm()
            if old_tqdm is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = old_tqdm


_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_LOG_OF_FAILED = re.compile(r"^\s*log: (.+?) \(check log file\(s\) for error details\)\s*$")


def _job_error(log_file: Path) -> str:
    """The known-error message of a failed job's log, or its last traceback line and a pointer."""
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return f"(no log file {log_file})"
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if _ERROR_MARK in line and not line.rstrip().endswith(_ERROR_MARK + "job failed"):
            more = []
            for follow in lines[i + 1 :]:
                if _TIMESTAMP.match(follow):
                    break
                more.append(follow)
            if len(more) > 8:
                more = more[:8] + [f"    ... (see {log_file})"]
            return "\n".join([line.split(_ERROR_MARK, 1)[1].strip()] + ["  " + m for m in more])
    tail = [ln for ln in lines if ln.strip()]
    last = tail[-1].strip() if tail else "(empty log)"
    return f"{last} (traceback in {log_file})"


def failure_summary(snakemake_log: str | PathLike[str] | Sequence[str] | None, limit: int = 20) -> str:
    """One line per failed job of a Snakemake run: the job's log file and its error message.

    Reads the run's main log (Snakemake's ``log`` in ``onerror``) for the ``log:`` entries of the
    ``Error in rule`` blocks and takes each job's message from its own log file.

    Args:
        snakemake_log: Path of the run's Snakemake log (``.snakemake/log/*.snakemake.log``), or a list
            of such paths (what Snakemake passes to ``onerror``).
        limit: At most this many jobs are listed (the count of the rest is given).

    Returns:
        The summary (empty when no failed job with a log file is found).

    Example:
        >>> failure_summary(None)
        ''
    """
    paths = [snakemake_log] if isinstance(snakemake_log, (str, PathLike)) else list(snakemake_log or [])
    text: list[str] = []
    for p in paths:
        if p and Path(p).is_file():
            text += Path(p).read_text(encoding="utf-8", errors="replace").splitlines()
    logs: list[str] = []
    for i, line in enumerate(text):
        if line.startswith("Error in rule") or line.strip().startswith("Error in rule"):
            for follow in text[i + 1 : i + 12]:
                m = _LOG_OF_FAILED.match(follow)
                if m:
                    for f in m.group(1).split(", "):
                        if f not in logs:
                            logs.append(f)
                    break
    if not logs:
        return ""
    out = [f"blobloss: {len(logs)} job(s) failed:"]
    for f in logs[:limit]:
        out.append(f"  {f}: {_job_error(Path(f))}")
    if len(logs) > limit:
        out.append(f"  ... and {len(logs) - limit} more (see the logs under the same folder)")
    return "\n".join(out)

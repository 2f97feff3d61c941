"""Logging for pipeline jobs: everything a job prints goes to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def log_to_file(path: str | PathLike[str]) -> Iterator[logging.Logger]:
    """Send logging, warnings, stdout and stderr (tqdm bars too) to ``path`` while the block runs.

    An exception is written to the log with its traceback and raised again, so Snakemake reports the
    job as failed and the console shows the error after the streams are restored.

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
    with open(log_path, "w", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter(_FORMAT))
        root = logging.getLogger()
        old_level = root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        sys.stdout = sys.stderr = fh
        logger = logging.getLogger("blobloss")
        try:
            yield logger
        except BaseException:
            logger.exception("job failed")
            raise
        finally:
            sys.stdout, sys.stderr = old_out, old_err
            logging.captureWarnings(False)
            root.removeHandler(handler)
            root.setLevel(old_level)

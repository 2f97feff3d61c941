"""The error and warning classes that every layer of blobloss raises.

One small module without dependencies, so that :mod:`blobloss.io`, :mod:`blobloss.data` and the jobs share
the same classes without importing each other.

*Known* errors are the ones a user can fix from the message alone: bad or inconsistent data, a wrong
config value, a missing file. They all derive from :class:`BlobLossError`, and a pipeline job reports them
as one short message without a traceback (:func:`blobloss.logs.log_to_file`). Every other exception is a
bug or an environment problem and keeps its traceback.

Each message follows one pattern: what is wrong (naming the case, the file or the config key and the
offending value), then ``;`` and how to fix it.

Example:
    >>> err = DataIntegrityError("case 'c1': label lab.nii.gz has shape (4, 4, 3) but image img.nii.gz "
    ...                          "has (4, 4, 2); resample the label onto the image grid")
    >>> isinstance(err, ValueError), is_known_error(err), is_known_error(KeyError("x"))
    (True, True, False)
"""

from __future__ import annotations

__all__ = [
    "BlobLossError",
    "ConfigError",
    "DataIntegrityError",
    "EmptyLabelWarning",
    "LabelBinarizedWarning",
    "MissingFileError",
    "PatchPaddingWarning",
    "is_known_error",
]


class BlobLossError(Exception):
    """Base class of the errors a user fixes from the message alone (reported without a traceback)."""


class DataIntegrityError(BlobLossError, ValueError):
    """User data is inconsistent, corrupt or incomplete; the message names the case, the file and the fix."""


class ConfigError(BlobLossError, ValueError):
    """A config value is invalid or inconsistent; the message names the key path, the value and the fix."""


class MissingFileError(BlobLossError, FileNotFoundError):
    """A file a job needs does not exist; the message names it and what produces it."""


class EmptyLabelWarning(UserWarning):
    """A case's label has no foreground voxel (allowed, but worth knowing)."""


class LabelBinarizedWarning(UserWarning):
    """A label held values other than 0/1 (e.g. 0/255) and was binarized (``label > 0``)."""


class PatchPaddingWarning(UserWarning):
    """A case is smaller than the training patch and is zero-padded (only with ``pad_to_patch: true``)."""


def is_known_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a known error, i.e. its message alone tells the user what to fix.

    Example:
        >>> is_known_error(ConfigError("x")), is_known_error(RuntimeError("x"))
        (True, False)
    """
    return isinstance(exc, BlobLossError)

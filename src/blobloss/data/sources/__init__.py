"""The raw data formats a dataset can come in, one module per format.

Each module offers ``discover(dataset, src)`` and ``read(dataset, src, case_id, sources)`` (and optionally
``process``, see :mod:`blobloss.data.sources._common`); :mod:`blobloss.data.convert` dispatches on
``dataset["source"]["format"]`` through :func:`source_module`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from blobloss.data.sources._common import RawCase, SourceFormat, source_config

__all__ = ["RawCase", "SourceFormat", "source_config", "source_module"]


def source_module(fmt: SourceFormat | str) -> ModuleType:
    """The module of one source format.

    Example:
        >>> source_module("lightsheet").__name__
        'blobloss.data.sources.lightsheet'
    """
    return importlib.import_module(f"blobloss.data.sources.{SourceFormat(fmt).value}")

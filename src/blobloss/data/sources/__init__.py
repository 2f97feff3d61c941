"""The raw data formats a dataset can come in, one module per format.

Each module offers ``discover(dataset, src)`` and ``read(dataset, src, case_id, sources)`` (and optionally
``process``, see :mod:`blobloss.data.sources._common`); :mod:`blobloss.data.convert` dispatches on
``dataset["source"]["format"]`` through :func:`source_module`.
"""

from __future__ import annotations

from types import ModuleType

from blobloss.data.sources import generic, lightsheet, lits, nnunet, synthetic
from blobloss.data.sources._common import RawCase, SourceFormat, source_config

#: The module of each format (plain imports, so the pipeline's import scan sees every format's code).
_MODULES: dict[SourceFormat, ModuleType] = {
    SourceFormat.SYNTHETIC: synthetic,
    SourceFormat.GENERIC: generic,
    SourceFormat.NNUNET: nnunet,
    SourceFormat.LITS: lits,
    SourceFormat.LIGHTSHEET: lightsheet,
}

__all__ = ["RawCase", "SourceFormat", "source_config", "source_module"]


def source_module(fmt: SourceFormat | str) -> ModuleType:
    """The module of one source format.

    Example:
        >>> source_module("lightsheet").__name__
        'blobloss.data.sources.lightsheet'
    """
    return _MODULES[SourceFormat(fmt)]

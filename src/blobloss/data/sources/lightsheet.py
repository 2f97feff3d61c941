"""Source format ``lightsheet``: like ``generic`` (usually TIFF stacks, axes ``(z, y, x)``).

TIFF files rarely carry a spacing, so ``spacing`` from the config is required unless the file declares one.
"""

from __future__ import annotations

from blobloss.data.sources.generic import discover, read

__all__ = ["discover", "read"]

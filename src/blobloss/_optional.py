"""Optional dependencies: one clear ImportError that names the extra to install.

``pip install blobloss`` installs the loss library only (torch, numpy, cc3d). The pipeline's modules need
the ``pipeline`` extra (``pip install "blobloss[pipeline]"``); the loss's per-instance loop with the built-in
Dice / Tversky criteria needs MONAI (the ``monai`` extra, also part of ``pipeline``).

* :func:`require` imports one module or raises an ImportError naming the extra;
* :func:`require_extra` checks, without importing anything, that every module of an extra can be found;
  the pipeline modules call it first, so that a missing package is reported as a missing extra.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["EXTRAS", "missing_modules", "require", "require_extra"]

#: Import names of the packages each extra brings (beyond the base torch, numpy, cc3d).
EXTRAS: dict[str, tuple[str, ...]] = {
    "monai": ("monai",),
    "pipeline": (
        "monai", "einops", "nibabel", "SimpleITK", "tifffile", "pandas", "tabulate", "jinja2", "scipy",
        "matplotlib", "seaborn", "tqdm", "yaml", "jsonschema", "pymia", "pytorch_optimizer",
    ),
}


def _install_hint(extra: str) -> str:
    return f'pip install "blobloss[{extra}]" (from a checkout: pip install -e ".[{extra}]")'


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be found (nothing is imported).

    Example:
        >>> missing_modules("monai") in ([], ["monai"])
        True
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {sorted(EXTRAS)}.")
    missing = []
    for name in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def require_extra(extra: str, user: str) -> None:
    """Raise an ImportError naming ``extra`` if any of its packages is missing.

    Args:
        extra: A key of :data:`EXTRAS`, e.g. ``"pipeline"``.
        user: The module that needs it (shown in the message), usually ``__name__``.

    Raises:
        ImportError: Listing the missing modules and the install command.

    Example:
        >>> require_extra("pipeline", "blobloss.metrics")  # doctest: +SKIP
    """
    missing = missing_modules(extra)
    if missing:
        raise ImportError(
            f"{user} is part of the blobloss pipeline and needs the '{extra}' extra, which is not installed "
            f"(missing: {', '.join(missing)}). Install it with: {_install_hint(extra)}. The loss library "
            "(blobloss.losses) works without it."
        )


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import ``module``, or raise an ImportError that names the extra providing it.

    Args:
        module: Dotted module name, e.g. ``"monai.losses"``.
        extra: The extra that installs it, e.g. ``"monai"``.
        purpose: What needs it, for the message.

    Returns:
        The imported module.

    Raises:
        ImportError: If the module cannot be imported.

    Example:
        >>> require("math", extra="monai").sqrt(4.0)
        2.0
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        what = f" for {purpose}" if purpose else ""
        raise ImportError(
            f"{module} is needed{what} but is not installed ({err}). Install the '{extra}' extra: "
            f"{_install_hint(extra)}."
        ) from err

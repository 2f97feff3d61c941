"""``python -m blobloss.integrations.nnunet --ext-trainer-path``: where nnU-Net finds the blob trainers."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys

from blobloss.integrations.nnunet import TRAINERS, ext_trainer_path

MIN_NNUNET = (2, 8)


def _nnunet_problem() -> str | None:
    """Why the trainers cannot run here (nnunetv2 missing or too old), or None."""
    try:
        version = importlib.metadata.version("nnunetv2")
    except importlib.metadata.PackageNotFoundError:
        return 'nnunetv2 is not installed; install it with: pip install "blobloss[nnunet]"'
    try:
        parts = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return None
    if parts < MIN_NNUNET:
        return f'nnunetv2 {version} is installed but the blob trainers need >= 2.8: pip install "nnunetv2>=2.8"'
    return None


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m blobloss.integrations.nnunet",
        description="Blob loss trainers for nnU-Net v2. Typical use: "
        "export nnUNet_extTrainer=$(python -m blobloss.integrations.nnunet --ext-trainer-path)",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--ext-trainer-path", action="store_true", help="print the directory for nnUNet_extTrainer")
    group.add_argument("--list-trainers", action="store_true", help="print the trainer names (for -tr)")
    args = parser.parse_args(argv)
    problem = _nnunet_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    if args.ext_trainer_path:
        print(ext_trainer_path())
    else:
        print("\n".join(TRAINERS))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write the bundle's tiny synthetic dataset: DIR/images/case_XXX.nii.gz and DIR/labels/case_XXX.nii.gz.

Usage: python examples/monai_bundle/scripts/make_dataset.py --out examples/monai_bundle/data --n-cases 4
"""

from __future__ import annotations

import argparse

from blobloss.data.synthetic import write_synthetic_raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="dataset folder (images/ and labels/ are created in it)")
    parser.add_argument("--n-cases", type=int, default=4, help="number of cases (default 4)")
    parser.add_argument("--shape", type=int, nargs="+", default=[48, 48, 24], help="spatial shape (default 48 48 24)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    args = parser.parse_args()
    paths = write_synthetic_raw(args.out, n_cases=args.n_cases, shape=args.shape, seed=args.seed)
    print(f"wrote {len(paths)} cases to {args.out}")


if __name__ == "__main__":
    main()

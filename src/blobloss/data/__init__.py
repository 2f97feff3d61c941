"""Data stages of the pipeline: checks, conversion, normalisation, splits, manifests, synthetic data."""

from blobloss._optional import require_extra

require_extra("pipeline", __name__)  # a clear ImportError naming the extra when it is not installed

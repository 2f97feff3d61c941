"""blobloss: instance-imbalance-aware segmentation (blob loss, Kofler et al., IPMI 2023)."""

__version__ = "0.1.0"

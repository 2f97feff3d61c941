"""The blob statistics job: figure, full-precision CSV and the formatted HTML table the report shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blobloss.data.synthetic import generate_case
from blobloss.jobs import blob_statistics_job
from blobloss.io import save_nifti
from blobloss.stats import write_dataset_statistics
from blobloss.tables import blob_summary


def test_job_writes_figure_csv_and_html_table(tmp_path: Path) -> None:
    features, counts = [], []
    for dataset, shape in (("d3", (32, 32, 16)), ("d2", (64, 64))):
        paths = {}
        for i in range(2):
            _, _, inst = generate_case(i, shape)
            paths[f"c{i}"] = tmp_path / dataset / f"c{i}.nii.gz"
            save_nifti(paths[f"c{i}"], inst, dtype=np.uint32)
        features.append(tmp_path / dataset / "features.csv")
        counts.append(tmp_path / dataset / "counts.csv")
        write_dataset_statistics(paths, dataset, features[-1], counts[-1])
    out = tmp_path / "stats"
    summary = blob_statistics_job(features, counts, out / "fig.png", out / "blob_statistics.csv",
                                  out / "blob_statistics.html", percentile=95)
    assert (out / "fig.png").stat().st_size > 0
    written = pd.read_csv(out / "blob_statistics.csv")
    expected = blob_summary(pd.concat(map(pd.read_csv, features)), pd.concat(map(pd.read_csv, counts)))
    assert list(written.columns) == list(expected.columns) and len(written) == len(summary) == 2
    html = (out / "blob_statistics.html").read_text()
    assert "<table" in html and "d3" in html and "d2" in html


def test_job_refuses_two_different_table_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must share their name"):
        blob_statistics_job([], [], tmp_path / "f.png", tmp_path / "a.csv", tmp_path / "b.html")

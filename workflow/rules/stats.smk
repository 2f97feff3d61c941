# Blob statistics (docs/definitions.md section 4, paper Fig. 4): a feature table per dataset and one figure.


localrules: blob_features, blob_statistics  # cheap jobs: never a cluster job of their own


rule blob_features:
    """Blob count per case and shape features per blob (volume, compactness, sphereness, stringness, skewness)."""
    input:
        instances=lambda wc: per_case("instances", wc.dataset),
        code=job_code("blob_features.py"),
    output:
        features=PATHS["blob_features"],
        counts=PATHS["blob_counts"],
    params:
        method=config["stats"]["method"],
        cases=lambda wc: CASES[wc.dataset],
    message:
        "blob features of {wildcards.dataset}"
    log:
        LOGS + "/stats/{dataset}.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../../scripts/blob_features.py"


rule blob_statistics:
    """Fig. 4-style figure and a summary table over every dataset of the config."""
    input:
        features=per_dataset("blob_features"),
        counts=per_dataset("blob_counts"),
        code=job_code("blob_statistics.py"),
    output:
        figure=report(
            PATHS["stats_figure"],
            caption="../report/blob_statistics.rst",
            category="Blob statistics",
        ),
        table=PATHS["stats_table"],
        html=report(
            PATHS["stats_table_html"],
            caption="../report/blob_statistics_table.rst",
            category="Blob statistics",
        ),
    params:
        percentile=config["stats"]["percentile"],
    message:
        "blob statistics figure (Fig. 4) of every dataset"
    log:
        LOGS + "/stats/figure.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../../scripts/blob_statistics.py"

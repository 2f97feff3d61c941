# Dataset conversion into the standard layout (NIfTI image + label + meta per case) and the manifest.

_CONVERT_CODE = pkg_src("data/convert.py", "data/checks.py", "data/normalize.py", "data/synthetic.py", "io.py")


localrules: convert_case, convert_case_with_ids, manifest  # cheap jobs: never a cluster job of their own


rule convert_case:
    """Convert one case: integrity checks, normalization, NIfTI image and binary label, meta.json."""
    input:
        raw=raw_files,
        code=_CONVERT_CODE,
    output:
        image=PATHS["image"],
        label=PATHS["label"],
        meta=PATHS["meta"],
    params:
        dataset=conversion_params,
        sources=lambda wc: SOURCES[wc.dataset][wc.case],
    wildcard_constraints:
        dataset=_regex_of([d for d in DATASETS if d not in instance_label_datasets()]),
    log:
        LOGS + "/convert/{dataset}/{case}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/convert_case.py"


rule convert_case_with_ids:
    """As convert_case, for label files that hold instance ids: the ids are kept for the components stage."""
    input:
        raw=raw_files,
        code=_CONVERT_CODE,
    output:
        image=PATHS["image"],
        label=PATHS["label"],
        meta=PATHS["meta"],
        instances=PATHS["given_instances"],
    params:
        dataset=conversion_params,
        sources=lambda wc: SOURCES[wc.dataset][wc.case],
    wildcard_constraints:
        dataset=_regex_of(instance_label_datasets()),
    log:
        LOGS + "/convert/{dataset}/{case}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/convert_case.py"


rule manifest:
    """One row per case: split, shape, spacing, channels, label voxels, empty flag, instance count."""
    input:
        metas=lambda wc: per_case("meta", wc.dataset),
        instances=lambda wc: per_case("instances_json", wc.dataset),
        code=pkg_src("data/manifest.py", "data/split.py"),
    output:
        manifest=PATHS["manifest"],
        split=PATHS["split"],
    params:
        split=split_params,
    log:
        LOGS + "/manifest/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/manifest.py"

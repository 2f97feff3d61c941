# Dataset check and conversion into the standard layout (NIfTI image + label + meta per case), manifest.

def _check_params(wildcards):
    """What the checks read: the source, its cases, spacing and label kind (not normalization)."""
    ds = DATASETS[wildcards.dataset]
    keys = ("name", "source", "spacing", "spacing_unit", "instance_labels")
    return {"dataset": {k: ds[k] for k in keys}, "cases": SOURCES[wildcards.dataset]}


rule check_dataset:
    """Every case of a dataset read and checked at once, before any conversion: all problems in one message."""
    input:
        code=job_code("check_dataset.py"),
    output:
        report=PATHS["checks"],
    params:
        check=_check_params,
    message:
        "check every case of {wildcards.dataset}"
    threads: max(1, min(workflow.cores, 4))
    log:
        LOGS + "/check/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/check_dataset.py"


rule check_patch:
    """The training patch against every case, from the check's report: an oversized patch stops a first run
    before training (later runs check it when the workflow is parsed)."""
    input:
        checks=PATHS["checks"],
        code=job_code("check_patch.py"),
    output:
        report=PATHS["patch_check"],
    params:
        patch_size=lambda wc: DATASETS[wc.dataset]["training"]["patch_size"],
        pad_to_patch=lambda wc: DATASETS[wc.dataset]["training"]["pad_to_patch"],
    priority: 100  # before the conversions, as soon as the check is done
    message:
        "check the training patch against every case of {wildcards.dataset}"
    log:
        LOGS + "/check/{dataset}_patch.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/check_patch.py"


localrules: check_dataset, check_patch, convert_case, convert_case_with_ids, manifest  # reading and converting cases: never a cluster job of their own


rule convert_case:
    """Convert one case: integrity checks, normalization, NIfTI image and binary label, meta.json."""
    input:
        raw=raw_files,
        checks=PATHS["checks"],
        code=job_code("convert_case.py"),
    output:
        image=PATHS["image"],
        label=PATHS["label"],
        meta=PATHS["meta"],
    params:
        dataset=conversion_params,
        sources=lambda wc: SOURCES[wc.dataset][wc.case],
    message:
        "convert {wildcards.dataset}/{wildcards.case}"
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
        checks=PATHS["checks"],
        code=job_code("convert_case.py"),
    output:
        image=PATHS["image"],
        label=PATHS["label"],
        meta=PATHS["meta"],
        instances=PATHS["given_instances"],
    params:
        dataset=conversion_params,
        sources=lambda wc: SOURCES[wc.dataset][wc.case],
    message:
        "convert {wildcards.dataset}/{wildcards.case} (instance ids kept)"
    wildcard_constraints:
        dataset=_regex_of(instance_label_datasets()),
    log:
        LOGS + "/convert/{dataset}/{case}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/convert_case.py"


rule manifest:
    """One row per case: split, shape, spacing, channels, label voxels, empty and binarized flags, instance count."""
    input:
        metas=lambda wc: per_case("meta", wc.dataset),
        instances=lambda wc: per_case("instances_json", wc.dataset),
        code=job_code("manifest.py"),
    output:
        manifest=PATHS["manifest"],
        split=PATHS["split"],
    params:
        split=split_params,
    message:
        "manifest and split of {wildcards.dataset}"
    log:
        LOGS + "/manifest/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/manifest.py"

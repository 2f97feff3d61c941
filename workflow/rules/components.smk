# Connected components (docs/definitions.md section 1): one instance map per case, stored beside the label.


def _given_instances(wildcards):
    if DATASETS[wildcards.dataset]["instance_labels"]:
        return PATHS["given_instances"].format(**wildcards)
    return []


localrules: components  # cheap per-case jobs: never a cluster job of their own


rule components:
    """Instance map of one case with cc3d (or the ids the label file already held)."""
    input:
        label=PATHS["label"],
        given=_given_instances,
        code=job_code("components.py"),
    output:
        instances=PATHS["instances"],
        summary=PATHS["instances_json"],
    params:
        connectivity=lambda wc: DATASETS[wc.dataset]["connectivity"],
    message:
        "instance map of {wildcards.dataset}/{wildcards.case}"
    log:
        LOGS + "/components/{dataset}/{case}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/components.py"

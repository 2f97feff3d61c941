"""Snakemake job: the dataset's split and manifest (blobloss.data.split, blobloss.data.manifest)."""
from blobloss.data.manifest import write_manifest
from blobloss.data.split import make_split
from blobloss.io import write_json_atomic
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]) as log:
    p = snakemake.params.split
    split = make_split(
        p["cases"],
        seed=p["seed"],
        test_fraction=p["test_fraction"],
        val_fraction=p["val_fraction"],
        split_file=p["file"],
    )
    write_json_atomic(snakemake.output.split, split)
    manifest = write_manifest(snakemake.input.metas, snakemake.input.instances, split, snakemake.output.manifest)
    log.info("manifest of %d cases: %s", len(manifest), {k: len(v) for k, v in split.items()})

# The Snakemake view of the pipeline: the same `finenet <stage>` commands as dvc.yaml, sharded per
# clip where the work is per clip, so cluster executors (SLURM, Kubernetes) fan them out.
#   snakemake --cores 2                          # embedded default
#   snakemake --config profile=paper --profile workflow/profiles/slurm
#   snakemake --report reports/report.html
from snakemake.utils import min_version, validate

from finenet import dag
from finenet.data.clips import plan_clips, plan_file, write_plan
from finenet.layout import DEFAULT as LAYOUT, training_runs
from finenet.params import SCHEMA, resolve

min_version("9.0")


configfile: "params.yaml"


PARAMS = resolve(config)  # profile merged; same schema as finenet.params uses
validate(PARAMS, str(SCHEMA))  # the package's schema (finenet/schemas/)
PROFILE = PARAMS["profile"]
PLAN = plan_clips(PARAMS)  # the datasets listed once, here; per-clip jobs read it back (--plan)
SPECS = {c.clip_id: c.to_dict() for c in PLAN}  # each clip's plan entry
CLIPS = list(SPECS)
PLAN_FILE = str(write_plan(PLAN, PARAMS, plan_file(PROFILE)))  # rewritten only when it changes


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    input:
        rules.pack.output,
        rules.evaluate.output,
        rules.report.output,

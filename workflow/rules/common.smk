# Shared by every rule: the clip wildcard only matches planned clips; one command prefix;
# each rule's parameters.
import re


wildcard_constraints:
    clip="|".join(re.escape(c) for c in CLIPS),


FINENET = f"finenet {{stage}} --profile {PROFILE}"


def stage_params(name):
    """A rule's `params:`: the resolved keys its stage reads (finenet/dag.py, as dvc.yaml tracks
    them), with their values, so a change of one re-runs the rule (and only it); per clip, the
    clip's plan entry stands for the plan's keys."""
    return dag.snakemake_params(name, PARAMS, SPECS)

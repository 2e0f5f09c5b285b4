# Shared by every rule: the clip wildcard only matches planned clips; one command prefix.
import re


wildcard_constraints:
    clip="|".join(re.escape(c) for c in CLIPS),


FINENET = f"finenet {{stage}} --profile {PROFILE}"

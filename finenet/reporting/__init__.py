"""What the report stage draws on: ``tables`` (the paper's tables), ``figures`` (pies, curves,
sample grids) and ``stats`` (paired bootstrap intervals)."""

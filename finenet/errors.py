"""One error type for bad input: ``<file>: <problem>``, printed as one line by the CLI."""


class FineNetError(Exception):
    """A user-facing error about a named file (or parameter) and what is wrong with it."""

    def __init__(self, where, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")

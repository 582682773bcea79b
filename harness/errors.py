"""Errors the harness reports to users as one clear line (no traceback).

``UserInputError`` subclasses are mistakes in what the user gave us (recipe, dataset,
model name); the CLI exits with status 2 for those. Other ``HarnessError``s exit with 1.
"""


class HarnessError(Exception):
    """A failure the harness explains in words; the CLI prints it without a traceback."""

    exit_code = 1


class UserInputError(HarnessError):
    exit_code = 2


class RecipeError(UserInputError):
    """One or more problems in a recipe; each is one line naming the file and the field."""

    def __init__(self, problems: list[str]):
        # one line each, whatever the user typed: control characters are shown escaped
        self.problems = [p if p.isprintable() else p.encode("unicode_escape").decode("ascii") for p in problems]
        super().__init__("\n".join(self.problems))


class DataError(UserInputError):
    """A dataset that cannot be found or read."""


class ModelError(UserInputError):
    """A model name or path that cannot be loaded."""


class JavaError(HarnessError):
    """Java (needed by Pyserini/Lucene) cannot start."""


class ArtifactError(HarnessError):
    """A cached artifact is missing, corrupted or inconsistent."""

"""Exceptions of the rules package: one root, narrow subclasses."""

from __future__ import annotations


class RulesError(Exception):
    """Root of every error raised by `rules`."""


class PackError(RulesError):
    """A rule pack (or the set of packs) is invalid; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems) if self.problems else "invalid rule pack")


class DeadlinesError(RulesError):
    """The deadlines file is missing a level or malformed."""


class ProjectionError(RulesError):
    """The projections file names an unknown agency or field."""


class SeedError(RulesError):
    """A plan text (seed) or a clause in it cannot be found."""

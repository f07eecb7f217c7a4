"""Search-space dimensions as plain data; `hpo` turns each into the matching `trial.suggest_*` call."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Categorical:
    choices: tuple

    def __post_init__(self):
        if not self.choices:
            raise ValueError("Categorical needs at least one choice")
        object.__setattr__(self, "choices", tuple(self.choices))


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self):
        if self.low > self.high or self.step < 1 or (self.log and (self.low < 1 or self.step != 1)):
            raise ValueError(f"invalid Int range: {self}")


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False

    def __post_init__(self):
        if self.low > self.high or (self.log and self.low <= 0):
            raise ValueError(f"invalid Float range: {self}")


Dimension = Categorical | Int | Float

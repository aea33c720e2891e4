"""A board's summary columns: functions of its method × countermeasure accuracy table, one per name, registered
here and kept apart from the countermeasure columns (`Leaderboard.summary`). Their names are reserved in
`registry.SUMMARY_NAMES`, so no countermeasure can take one."""
from __future__ import annotations

from typing import Callable

import pandas as pd

from ..registry import SUMMARY_NAMES

Summary = Callable[[pd.DataFrame], pd.Series]
SUMMARIES: dict[str, Summary] = {}


def summary(name: str) -> Callable[[Summary], Summary]:
    """Register a summary under `name`, which must be reserved and not yet taken."""

    def register(fn: Summary) -> Summary:
        if name not in SUMMARY_NAMES:
            raise ValueError(f"summary {name!r} is not a reserved name; reserve it in registry.SUMMARY_NAMES "
                             f"(reserved: {', '.join(SUMMARY_NAMES)})")
        if name in SUMMARIES:
            raise ValueError(f"summary {name!r} is already registered")
        SUMMARIES[name] = fn
        return fn

    return register


@summary("worst")
def worst(table: pd.DataFrame) -> pd.Series:
    """The highest accuracy any countermeasure restores: the protection's worst case (over the cells measured)."""
    return table.max(axis=1)


@summary("mean")
def mean(table: pd.DataFrame) -> pd.Series:
    """The accuracy averaged over the countermeasures measured."""
    return table.mean(axis=1)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Every registered summary of `table`, one column each, in registration order."""
    return pd.DataFrame({name: fn(table) for name, fn in SUMMARIES.items()}, index=table.index, dtype=float)

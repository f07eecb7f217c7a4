"""Whether a promotion may read the test split of its data: test holds both classes, the data is the data
the config was chosen on (every row through the date it was chosen on), and every test label starts after
the config's last val label has ended."""

from __future__ import annotations

import pandas as pd

from conventions.errors import UserError
from datamodules.prepared import Prepared, Seen, prepare
from training.config import RunConfig
from training.promotion.source import Source


def check(source: Source, prepared: Prepared) -> None:
    """A `UserError` naming the source unless this promotion's test split is held out from its config."""
    prepared.check_test_labels()
    mismatch = data_mismatch(source.seen, prepared)
    if mismatch:
        raise UserError(f"{source.label}: {mismatch}")
    overlap = held_out_from(source.seen, source.config, prepared)
    if overlap:
        raise UserError(f"{source.label}: {overlap}; promote it with the data and split settings it was "
                        "chosen on")


def data_mismatch(seen: Seen | None, prepared: Prepared) -> str | None:
    """Why this data is not the data the config was chosen on (every row through `seen.until` the same), or
    None when it is (rows after that date may differ or be new) or nothing was recorded."""
    if seen is None:
        return None
    ours = prepared.fingerprint_through(seen.until)
    if ours == seen.fingerprint:
        return None
    return (f"the data differs from the data the config was chosen on: rows through {seen.until} of "
            f"{prepared.source} (dates {prepared.source_dates[0]} .. {prepared.source_dates[1]}) have "
            f"fingerprint {ours}, the config was chosen on rows through {seen.until} of {seen.source} with "
            f"fingerprint {seen.fingerprint}; promote it with that data (rows after {seen.until} may be "
            "added)")


def held_out_from(seen: Seen | None, chosen_on_cfg: RunConfig, prepared: Prepared) -> str | None:
    """Why this promotion's test split is not held out from the data the config was selected and trained on,
    or None when it is: every test label must start after the last label of that config's val split has
    ended. `seen` (the rows through that label's end, checked by `data_mismatch`) says where; without it
    (a config file, or a run made before it was recorded) the config's own data is read again: its last val
    date plus its horizon, in rows of this promotion's data."""
    first = prepared.dates("test")[0]
    if seen is not None:
        if first >= pd.Timestamp(seen.until):
            return None
        return (f"the test split starts {first.date()}, but the config was chosen on rows through "
                f"{seen.until} (its last val label's end): the test split would not be held out")
    try:
        seen = prepare(chosen_on_cfg.data).dates("val")[-1]
    except UserError as err:
        return f"its own data cannot be read to check that the test split is held out from it ({err})"
    index = prepared.index
    rows_after = index.get_loc(first) - (index.searchsorted(seen, side="right") - 1)
    if first > seen and rows_after >= chosen_on_cfg.data.horizon:
        return None
    return (f"the test split starts {first.date()}, but the config was chosen on a val split that ends "
            f"{seen.date()} with labels {chosen_on_cfg.data.horizon} day(s) ahead: the test split would not "
            "be held out")

"""The test ledger on a study's parent run: a tag per promotion that read the study's test split (its own
key, so promotions running at the same time never overwrite each other's record) and their count as a
metric; and the held-out section of the study's note (the last promotion's test evidence)."""

from __future__ import annotations

import time

from mlflow.tracking import MlflowClient

from training import notes, tracking
from training.study_tags import LEDGER_COUNT, LEDGER_READ


def ledger(study_run_id: str | None) -> list[str]:
    """The promotion runs that read the study's test split so far, oldest first."""
    if study_run_id is None:
        return []
    tags = MlflowClient().get_run(study_run_id).data.tags
    reads = sorted((when, key.removeprefix(LEDGER_READ)) for key, when in tags.items()
                   if key.startswith(LEDGER_READ))
    return [run for _, run in reads]


def record_look(study_run_id: str | None, promotion_run_id: str) -> int:
    """Add a read of the test split to the study's ledger; returns the count, this read included."""
    if study_run_id is None:
        return 0
    tracking.log_batch(study_run_id, tags={f"{LEDGER_READ}{promotion_run_id}": f"{time.time_ns():020d}"})
    count = len(ledger(study_run_id))
    tracking.log_batch(study_run_id, {LEDGER_COUNT: count}, step=count)
    return count


def note_held_out(study_run_id: str, run_id: str, version: str, name: str, line: str) -> None:
    """The study's note gets (or replaces) its held-out section: this promotion's test evidence."""
    client = MlflowClient()
    note = client.get_run(study_run_id).data.tags.get(notes.NOTE, "")
    link = notes.run_link(f"promotion run {run_id}", client.get_run(run_id).info.experiment_id, run_id)
    tracking.log_batch(study_run_id, tags={notes.NOTE: notes.with_held_out(
        note, f"{line}: {link}, `{name}` version {version}")})

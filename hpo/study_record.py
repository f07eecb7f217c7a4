"""What a study records as Optuna user attributes, and the only place their names are written: `StudyRecord.of`
reads them (with the defaults a study made before one of them needs), a `StudyWriter` sets them. Each
attribute is named as the `StudyRecord` field that holds it."""

from __future__ import annotations

from dataclasses import dataclass, fields

import optuna

# what the trials of a study whose definition records no objective carry: the AUROC on val_report, the
# samples that also report it
LEGACY_OBJECTIVE = "best/val/auroc"


@dataclass(frozen=True)
class StudyRecord:
    """A study's user attributes; a field is its default where the study does not record it."""

    definition: dict[str, str] | None = None  # everything the study holds fixed (`hpo.study`), set by its creator
    mlflow_parent_run_id: str | None = None  # the MLflow parent run every worker nests its trials under
    enqueued: tuple[str, ...] = ()  # what was enqueued once per study: "forced", "transfer:SOURCE"

    @classmethod
    def of(cls, study: optuna.Study) -> StudyRecord:
        attrs = study.user_attrs
        known = {f.name: attrs[f.name] for f in fields(cls) if attrs.get(f.name) is not None}
        if "enqueued" in known:
            known["enqueued"] = tuple(known["enqueued"])
        return cls(**known)

    @property
    def objective(self) -> str:
        """The metric the study's trials carry as their value."""
        return (self.definition or {}).get("objective", LEGACY_OBJECTIVE)

    @property
    def budgets(self) -> list[str] | None:
        """The budgets it was created with, None when its definition records none."""
        budgets = (self.definition or {}).get("budgets")
        return budgets.split(",") if budgets else None


class StudyWriter:
    """Sets a study's user attributes, each under its `StudyRecord` field's name."""

    def __init__(self, study: optuna.Study):
        self._study = study

    def defined(self, definition: dict[str, str]) -> None:
        self._study.set_user_attr("definition", definition)

    def parent(self, run_id: str) -> None:
        self._study.set_user_attr("mlflow_parent_run_id", run_id)

    def enqueued(self, names: set[str]) -> None:
        self._study.set_user_attr("enqueued", sorted(names))

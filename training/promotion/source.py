"""What a promotion promotes, resolved once into a `Source`: the run (or config file) its config comes from,
that config, the study it belongs to (a study's best trial, one of its trials, or an earlier promotion of
it) and the rows it was chosen on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from conventions.cli import mask
from conventions.errors import UserError
from datamodules.prepared import Seen
from training import study_tags
from training.config import RunConfig
from training.registry import resolve_config, source_run

KIND = "promotion"  # the kind of a promotion's run
PARENT = "mlflow.parentRunId"
# a promotion run's tags naming its source (an earlier promotion is itself a source of its study)
SOURCE, SOURCE_RUN_ID, TRANSFERRED = "source", "source_run_id", "transferred_from"
STUDY, STUDY_RUN_ID, TRIAL = "study", "study_run_id", "trial"


@dataclass(frozen=True)
class Source:
    uri: str  # what the config is read from: runs:/ID, models:/..., or a config.json path
    label: str  # for people
    config: RunConfig  # the config as it was chosen (before this promotion's flags)
    run_id: str | None = None  # the run whose params are the config
    study: str | None = None
    study_run_id: str | None = None  # the study's parent run: where the test ledger lives
    trial: str | None = None
    transferred: bool = False  # from --use-best-from: the run is tagged `transferred_from`
    seen: Seen | None = None  # the rows the config was chosen on (None: a config file, or a run made before)

    def tags(self) -> dict[str, str]:
        """The promotion run's tags that name this source and link it to its study."""
        return {SOURCE: self.uri, **({TRANSFERRED: self.uri} if self.transferred else {}),
                **{k: v for k, v in ((STUDY, self.study), (STUDY_RUN_ID, self.study_run_id),
                                     (TRIAL, self.trial), (SOURCE_RUN_ID, self.run_id)) if v}}


def find_source(*, study: str | None, storage: str | None, run: str | None,
                use_best_from: str | None) -> Source:
    """The one source the flags name (the caller checks: exactly one of `study`, `run`, `use_best_from`)."""
    if study:
        return study_source(study, storage)
    if run:
        uri = f"runs:/{run}"
    elif "://" in use_best_from or use_best_from.startswith(("runs:", "models:")):
        uri = use_best_from
    else:
        return Source(uri=use_best_from, label=f"config file {use_best_from}",
                      config=resolve_config(use_best_from), transferred=True)
    client = MlflowClient()
    try:
        run_id, params = source_run(uri)
    except UserError:
        if run:  # a study's parent run holds no config: promote its best trial
            try:
                parent = client.get_run(run)
            except MlflowException:
                raise UserError(f"unknown run {run!r}: no such run in the tracking store") from None
            if parent.data.tags.get(study_tags.KIND) == study_tags.STUDY:
                return _best_of(parent, parent.info.run_name)
        raise
    tags = client.get_run(run_id).data.tags
    kind = tags.get(study_tags.KIND)
    link = {}
    if kind == study_tags.TRIAL and tags.get(PARENT):
        link = {"study": tags.get(study_tags.STUDY_NAME), "study_run_id": tags[PARENT],
                "trial": tags.get(study_tags.TRIAL_NUMBER)}
    elif kind == KIND and tags.get(STUDY_RUN_ID):
        link = {"study": tags.get(STUDY), "study_run_id": tags[STUDY_RUN_ID], "trial": tags.get(TRIAL)}
    return Source(uri=uri, label=f"{uri} (run {run_id}, kind {kind})", config=RunConfig.from_params(params),
                  run_id=run_id, transferred=not run, seen=Seen.from_tags(tags), **link)


def study_source(name: str, storage: str | None = None) -> Source:
    """A study's parent run (by name, and by its storage tag when `storage` is given) and its best trial."""
    studies = _search(f"tags.{study_tags.KIND} = '{study_tags.STUDY}'")
    matches = [r for r in studies if r.info.run_name == name]
    if storage is not None:
        matches = [r for r in matches if _same_storage(r.data.tags.get(study_tags.STORAGE, ""), storage)]
    if not matches:
        known = sorted({r.info.run_name for r in studies})
        where = f" with storage {mask(storage)}" if storage is not None else ""
        raise UserError(f"unknown study {name!r}{where}; studies in the tracking store: "
                        f"{', '.join(known) or 'none'}")
    places = sorted({r.data.tags.get(study_tags.STORAGE, "?") for r in matches})
    if len(places) > 1:
        raise UserError(f"{len(places)} studies are named {name!r} (storages: {', '.join(places)}): pass "
                        "--storage to choose one")
    return _best_of(max(matches, key=lambda r: r.info.start_time), name)


def _best_of(parent: Run, name: str) -> Source:
    """The source of a study's parent run: its best trial."""
    best = parent.data.tags.get(study_tags.BEST_RUN_ID)
    if not best:
        raise UserError(f"study {name!r} has no completed trial yet: nothing to promote")
    trial = parent.data.tags.get(study_tags.BEST_TRIAL)
    uri = f"runs:/{best}"
    _, params = source_run(uri)
    return Source(uri=uri, label=f"study {name!r}, best trial {trial} (run {best})",
                  config=RunConfig.from_params(params), run_id=best, study=name,
                  study_run_id=parent.info.run_id, trial=trial,
                  seen=Seen.from_tags(MlflowClient().get_run(best).data.tags))


def _search(filter_string: str) -> list[Run]:
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs, token = [], None
    while True:
        page = client.search_runs(experiments, filter_string, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _same_storage(tag: str, storage: str) -> bool:
    shown = mask(storage)
    if tag == shown:
        return True
    return "://" not in tag and "://" not in shown and Path(tag).resolve() == Path(shown).resolve()

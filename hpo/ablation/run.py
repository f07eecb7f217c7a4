"""Running the ablation: its MLflow parent found by name (resumed) or created, the cells its FINISHED runs
lack trained as nested runs, then the summary logged on the parent."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from conventions.errors import UserError
from hpo.ablation.plan import Cell, Plan
from hpo.ablation.summary import Summary, summarise
from hpo.ablation.table import log_summary


@dataclass
class Outcome:
    parent_run_id: str
    ran: int
    reused: int
    failed: list[tuple[Cell, str]]
    summary: Summary


def run_ablation(plan: Plan, *, echo: Callable[[str], None] = print) -> Outcome:
    """Find or create the parent, run the cells it lacks, write the table, the plot and the summary. From
    the parent's (re)opening on, an interrupt or error ends it (`tracking.ending`): never left RUNNING."""
    from mlflow.tracking import MlflowClient

    from training import tracking

    client = MlflowClient()
    exp = tracking.experiment_id()
    launcher = os.environ.pop("MLFLOW_RUN_ID", None)  # `mlflow run`'s run: adopted as the parent, or a pointer
    parent_id = find_parent(plan.name, exp)
    resumed = parent_id is not None
    if resumed:
        client.update_run(parent_id, status="RUNNING")
    else:
        parent_id = launcher or client.create_run(exp, run_name=plan.name).info.run_id
    with tracking.ending(parent_id):
        if resumed:
            if launcher is not None:
                tracking.log_batch(launcher, tags={"kind": "ablation-session", "ablation_name": plan.name,
                                                   "mlflow.parentRunId": parent_id})
            echo(f"ablation {plan.name!r}: resuming parent run {parent_id}")
        else:
            client.update_run(parent_id, name=plan.name)
            tracking.log_batch(parent_id, params={"ablation.fingerprint": plan.fingerprint},
                               tags={"kind": "ablation", "ablation_name": plan.name})
            echo(f"ablation {plan.name!r}: new parent run {parent_id}")
        tracking.log_batch(parent_id, tags={
            "tier": plan.data.tier, "folds": str(plan.data.folds), "models": ",".join(plan.models),
            "input_sizes": ",".join(map(str, plan.input_sizes)), "seeds": json.dumps(plan.seeds),
            "sources": json.dumps(plan.sources),
            "mlflow.note.content": "Context-length ablation; rerun the same `python -m hpo.ablation` command to "
                                   "resume it. Table: `ablation/table.md`."})
        for model, cfg in plan.bases.items():
            client.log_text(parent_id, cfg.to_json(), f"ablation/configs/{model}.json")
        done = finished_cells(parent_id, exp)
        ran, reused, failed = _run_cells(plan, parent_id, done, echo)
        summary = summarise(plan, {c: done[c.key] for c in plan.cells if c.key in done})
        log_summary(parent_id, plan, summary)
    return Outcome(parent_id, ran, reused, failed, summary)


def _run_cells(plan: Plan, parent_id: str, done: dict[str, str],
               echo: Callable[[str], None]) -> tuple[int, int, list[tuple[Cell, str]]]:
    """Train the cells not in `done` (cell_key -> run id, completed here): (run now, done before, failed)."""
    from training.train import train
    from training.walkforward import run_folds

    ran, reused, failed = 0, 0, []
    for i, cell in enumerate(plan.cells, 1):
        where = f"cell {i}/{len(plan.cells)} {cell.label()}"
        if cell.key in done:
            reused += 1
            echo(f"{where}: done before (run {done[cell.key]})")
            continue
        start = time.perf_counter()
        # over walk-forward folds the cell's run is a walk-forward parent (its kind the cell's) with a run per fold
        run = train if cell.config.data.folds == 1 else run_folds
        try:
            result = run(cell.config, tags={**cell.tags, "ablation_name": plan.name},
                         parent_run_id=parent_id, progress=False)
        except UserError as err:  # e.g. a non-finite loss: the run is FAILED, the others go on
            failed.append((cell, str(err)))
            echo(f"{where}: FAILED: {' '.join(str(err).split())}")
            continue
        done[cell.key] = result.run_id
        ran += 1
        m = result.metrics
        epochs = (f"best epoch {result.best_epoch} of {result.epochs}" if run is train else
                  f"mean over {len(result.folds)} folds, best epochs "
                  + ", ".join(f"{f.best_epoch} of {f.epochs}" for f in result.folds))
        echo(f"{where}: val/auroc {m['best/val/auroc']:.4f} [{m['best/val/auroc_ci_low']:.4f}, "
             f"{m['best/val/auroc_ci_high']:.4f}], {epochs} ({time.perf_counter() - start:.0f} s, run {result.run_id})")
    return ran, reused, failed


def find_parent(name: str, experiment: str) -> str | None:
    """The earliest ablation parent of this name in the experiment."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs([experiment], f"tags.kind = 'ablation' and tags.ablation_name = '{name}'",
                                      order_by=["attributes.start_time ASC"], max_results=1)
    return runs[0].info.run_id if runs else None


def finished_cells(parent_id: str, experiment: str) -> dict[str, str]:
    """cell_key -> run id of the FINISHED cells under the parent (the latest where one ran twice)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    found, token = {}, None
    query = (f"tags.mlflow.parentRunId = '{parent_id}' and tags.kind = 'ablation-cell' "
             "and attributes.status = 'FINISHED'")
    while True:
        page = client.search_runs([experiment], query, order_by=["attributes.start_time ASC"], max_results=1000,
                                  page_token=token)
        found |= {r.data.tags["cell_key"]: r.info.run_id for r in page if "cell_key" in r.data.tags}
        token = page.token
        if not token:
            return found

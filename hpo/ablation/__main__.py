"""`python -m hpo.ablation`: the plan printed, the cells run, the table and the verdicts printed; SIGTERM
(a scheduler's `kill`) is handled as Ctrl-C, as in `python -m hpo`."""

from __future__ import annotations

import os

from conventions.cli import run_main
from conventions.errors import UserError
from hpo.ablation.plan import build_parser, plan_from_args
from hpo.ablation.run import run_ablation
from hpo.ablation.summary import LEVEL
from hpo.ablation.table import table_markdown


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per cell's predictions
    args = build_parser().parse_args(argv)
    plan = plan_from_args(args)
    import mlflow

    from training import tracking
    from training.threads import apply_default_threads

    apply_default_threads()
    tracking.experiment_id()  # a tracking store that cannot be used fails before anything runs
    print(f"ablation {plan.name!r}: {len(plan.models)} models x {len(plan.input_sizes)} input sizes x "
          f"{len(next(iter(plan.seeds.values())))} seeds = {len(plan.cells)} cells")
    for model in plan.models:
        print(f"  {model}: {plan.sources[model] or 'backbone defaults'}, seeds {plan.seeds[model]}")
    out = run_ablation(plan)
    s = out.summary
    print(f"\n{out.ran} cells run now, {out.reused} done before, {len(out.failed)} failed")
    over = (f"mean over seeds [{LEVEL:.0%} CI over dates]" if not s.spans else
            f"in {len(s.spans)} walk-forward folds, mean over folds and seeds [{LEVEL:.0%} CI over dates within folds]")
    print(f"val AUROC on {s.n_dates} report dates ({s.dates[0]} .. {s.dates[1]}), {over}; each model's best input "
          "size chosen on the select part of val:")
    print(table_markdown(s, plan.name).split("## Val AUROC by input size (mean over seeds [95% CI])\n\n")[1]
          .split("\n\n## All rows")[0])
    for line in s.lines:
        print(f"- {line}")
    folds = ", folds.csv, plot_by_fold.png" if s.spans else ""
    print(f"MLflow: parent run {out.parent_run_id} (kind=ablation) with ablation/table.md, table.csv, plot.png"
          f"{folds}; tracking URI {mlflow.get_tracking_uri()}")
    if out.failed:
        raise UserError(f"{len(out.failed)} of {len(plan.cells)} cells failed ("
                        + "; ".join(f"{c.label()}: {e}" for c, e in out.failed[:3])
                        + ("; ..." if len(out.failed) > 3 else "") + "): the table holds the others")


if __name__ == "__main__":
    run_main(main)

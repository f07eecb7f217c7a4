"""`python -m hpo.ablation --model A,B --data-tier TIER --input-sizes 60,80,120 --seeds 3 [training flags]`:
a context-length ablation whose every number carries its uncertainty.

One MLflow parent run (tag `kind=ablation`) and one nested training run per (model, input size, seed)
(`kind=ablation-cell`, tags `model`, `input_size`, `seed`, `cell_key`): a normal run with its baselines and
`predictions/val.parquet`. Each model's config is `--use-best-from` (one source per model, or one for all:
its config with `model.name` replaced) or the backbone's defaults, then the flags and `--set`; only the
input size and the seed vary (seeds `--seed`, `--seed`+1, ...). Val and test cover the same dates for
every input size, so the cells pair on dates.

Rerunning the command resumes: the parent is found by its name (deterministic: tier, models and a hash
of their configs and the data, or `--name`), and a cell whose run under it FINISHED with the same
`cell_key` (a hash of the cell's whole config and the data fingerprint) is not run again. Adding input
sizes or seeds to the same command reuses the cells already run. Ctrl-C or SIGTERM (a scheduler's `kill`)
ends the running cell and the parent KILLED, none left RUNNING; the rerun runs that cell again.

On the parent: `ablation/table.csv` and `ablation/table.md` (one row per model and input size: seeds, the
seeds' mean AUROC on the select part of val, which chooses; the mean val AUROC over the seeds on the report
part of val, which chooses nothing, with its studentized block-bootstrap interval over dates; the per-seed
AUROCs, the best baseline on the same resamples and the paired interval of the difference) and
`ablation/plot.png`; the summary names each model's best input size and runner-up on the select part and
says, on the report part, whether the paired interval of their difference excludes 0.

With `--folds K` (K > 1) each cell is a run over K walk-forward folds (a `walk-forward` run with the cell's
tags, one nested run per fold): a row's numbers are the means over folds of each fold's, the intervals
resample each fold's report dates within that fold, and `ablation/table.md` adds each row's AUROC per fold.
"""

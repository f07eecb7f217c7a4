"""The Markdown descriptions (`mlflow.note.content`) that the MLflow UI shows on a run or a model version.

Each is built here and set by what finishes the run: `training.train` (a training run),
`training.walkforward` (a run over walk-forward folds), `hpo.study` (a trial), `hpo.parent` (a study's
parent), `training.promote` (the promotion run, the model version and the study's held-out section). Every
one says what the run is, its evidence line (AUROC with its interval, the best baseline on the same
samples, the paired interval and the verdict), the selection null and the held-out number where there are,
and the config in one line.
"""

from __future__ import annotations

from models.intervals import SAYS, verdict
from training.config import RunConfig

NOTE = "mlflow.note.content"
HELD_OUT = "\n\n#### Held out (test, read by promotion only)\n"  # the study note's section set by promotion


def evidence(m: dict[str, float], best_baseline: str, split: str, prefix: str = "") -> str:
    """The evidence line from `m`'s `{prefix}{split}/auroc...` keys and `baseline/best/{split}/auroc`."""
    key = f"{prefix}{split}/auroc"
    low, high = m[f"{key}_vs_best_baseline_ci_low"], m[f"{key}_vs_best_baseline_ci_high"]
    return (f"**{key} {m[key]:.4f}** [95% CI {m[f'{key}_ci_low']:.4f}, {m[f'{key}_ci_high']:.4f}]; best baseline "
            f"`{best_baseline}` {m[f'baseline/best/{split}/auroc']:.4f}; model minus it [{low:+.4f}, {high:+.4f}]: "
            f"**the model {SAYS[verdict(low, high)]} it**")


def config_line(cfg: RunConfig) -> str:
    """The config in one line: data, network shape, training."""
    d, t = cfg.data, cfg.train
    shape = ", ".join(f"{k} {v}" for k, v in cfg.model.hp.items())
    return (f"Config: `{cfg.model.name}` tier {d.tier}, input size {d.input_size}, horizon {d.horizon}, threshold "
            f"{d.threshold:g} | {shape} | loss {t.loss}, lr {t.lr:g}, weight decay {t.weight_decay:g}, batch "
            f"{d.batch_size}, seed {t.seed}")


REPORT_WORDS = "on val_report (the report half of val, which chose nothing)"
SELECT_WORDS = "on val_select (the selection half of val, which chose the epoch)"


def train_note(cfg: RunConfig, m: dict[str, float], best_baseline: str, best_epoch: int, epochs: int) -> str:
    """A training run (kind `train`)."""
    return (f"### Training run: {cfg.model.name} {cfg.data.tier} L{cfg.data.input_size}, seed {cfg.train.seed}\n"
            f"{evidence(m, best_baseline, 'val', 'best/')} ({REPORT_WORDS})\n\n"
            f"best/val_select/auroc {m['best/val_select/auroc']:.4f} {SELECT_WORDS}: epoch {best_epoch} of "
            f"{epochs}\n\n{config_line(cfg)}")


def folds_note(cfg: RunConfig, m: dict[str, float], best_baseline: str, folds: list[str]) -> str:
    """A run over walk-forward folds (kind `walk-forward`): the mean over folds, then `folds` (one Markdown
    line per fold, its run linked)."""
    d = cfg.data
    return (f"### Walk-forward run: {cfg.model.name} {d.tier} L{d.input_size}, {d.folds} folds "
            f"({d.window} window), seed {cfg.train.seed}\nMean over folds: "
            f"{evidence(m, best_baseline, 'val', 'best/')} ({REPORT_WORDS} of each fold; the interval resamples "
            "each fold's days within that fold)\n\n"
            + "\n".join(f"- {line}" for line in folds) + f"\n\n{config_line(cfg)}")


def trial_name(number: int, budget: str | None, style: str | None, state: str) -> str:
    """A trial run's name: its number, budget, style and state."""
    return " ".join(str(p) for p in (f"trial {number}", budget, style, state.lower()) if p)


def trial_note(study: str, number: int, state: str, *, budget: str | None, style: str | None, forced: bool,
               body: str | None, why: str | None) -> str:
    """A trial run: what it is and how it ended; `body`: its training note (a completed trial), `why`: why it
    was pruned or failed."""
    what = f"### Trial {number} of study `{study}`: {state}\nbudget {budget or '?'}, style {style or '?'}" + (
        " (forced: a fixed extreme config run before the search, never pruned)" if forced else "")
    return "\n\n".join(p for p in (what, why, body and body.split("\n", 1)[1]) if p)


def run_link(text: str, experiment: str, run_id: str) -> str:
    """A Markdown link to a run's page that keeps MLflow's UI in its Model-training view."""
    return f"[{text}](#/experiments/{experiment}/runs/{run_id}?workflowType=machine_learning)"


def study_note(name: str, storage: str, *, best: str, objective: float, null: float, evidence_line: str,
               by_budget: dict[str, float], counts: dict[str, int], phase1: str | None = None) -> str:
    """A study's parent run at the end of a session; `best`: the best trial, `phase1`: the phase-1 study a
    phase 2 continues (both `run_link`s)."""
    verdict_null = "exceeds" if objective > null else "does not exceed (selection luck cannot be ruled out)"
    budgets = ", ".join(f"{b} {v:.4f}" for b, v in by_budget.items())
    return (f"### Study `{name}`: best {best}\n"
            f"{evidence_line} ({REPORT_WORDS})\n\n"
            f"Selected on val_select: best/val_select/auroc {objective:.4f} {verdict_null} the selection null "
            f"{null:.4f} (what the best of as many random scorers as the completed trials had epoch evaluations "
            f"reaches on the same labels, 95th percentile)\n\n"
            f"Each budget's best trial on val_report: {budgets or 'none'}. Trials: "
            + ", ".join(f"{n} {s.lower()}" for s, n in counts.items())
            + f".\n\nOptuna study in `{storage}`; rerun the same `python -m hpo` command to resume it; "
            "`study/trials.md` lists every trial." + (f" Phase 2 of {phase1}." if phase1 else "")
            + f" The held-out number comes from `python -m training.promote --study {name}`.")


def promotion_note(label: str, cfg: RunConfig, m: dict[str, float], evaluations: tuple, seeds: list[int],
                   version: str, name: str, development: str) -> str:
    """A promotion run and its model version; `evaluations`: the ensemble's on test and on val_report
    (`training.evaluate.Evaluation`); `development`: the config's development record (`development_note`) or
    the line saying it has none."""
    test, val = evaluations
    return (f"### Promotion of {label}: {len(seeds)}-seed ensemble, registered as `{name}` version {version}\n"
            f"{evidence(m, test.best_baseline, 'test')} (held-out test, read once here)\n\n"
            f"{evidence(m, val.best_baseline, 'val', 'best/')} ({REPORT_WORDS}{last_fold(cfg.data.folds)})\n\n"
            f"{development}\n\n"
            f"Seeds {', '.join(map(str, seeds))}: test/auroc mean {m['test/auroc_seed_mean']:.4f}, sd "
            f"{m['test/auroc_seed_sd']:.4f}; Brier on test with the model's calibrator "
            f"{m['test/brier_val_calibrated']:.4f}\n\n{config_line(cfg)}")


def last_fold(folds: int) -> str:
    """Words that say a promotion's val_report is its last walk-forward fold's (nothing for one split)."""
    return f" of the last of {folds} walk-forward folds" if folds > 1 else ""


def development_note(source: str, k: int, window: str, mean: str, folds: list[str]) -> str:
    """A promotion's development record: the walk-forward evidence of the config from `source`, made before the
    promotion (`mean`: the mean over folds' evidence line), then `folds` (one line per fold)."""
    return (f"Development record (walk-forward evidence of {source}, made before this promotion): {k} folds "
            f"({window} window), mean over folds {mean} ({REPORT_WORDS} of each fold)\n"
            + "\n".join(f"- {line}" for line in folds))


def with_held_out(note: str, line: str) -> str:
    """A study note with its held-out section replaced by `line` (kept from earlier notes otherwise)."""
    return note.split(HELD_OUT)[0] + HELD_OUT + line


def held_out_of(note: str) -> str | None:
    """The held-out section of a study note, if promotion wrote one."""
    parts = note.split(HELD_OUT)
    return parts[1] if len(parts) > 1 else None

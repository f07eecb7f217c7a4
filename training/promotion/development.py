"""The promoted config's development record: the walk-forward evidence its source holds, carried onto the
promotion run and the model version.

A source holds it when its run ran over walk-forward folds (`training.walkforward`: a `python -m training
--folds K` parent run of kind `walk-forward`, or a study's trial over folds), under the names
`walkforward.across_folds` gives it: per fold the metrics `fold/<k>/...` and the tags
`fold/<k>/best_baseline`, `fold/<k>/val_report_dates`; across folds a training run's `EVIDENCE` and
`OBJECTIVE` (the mean over folds) and the tag `best_baseline`. An earlier promotion (a `models:/` source)
holds the same under `PREFIX`. The promotion run logs it under `PREFIX`, value for value, so that its own
`best/val/*` (the ensemble on the last fold's val_report) keeps its meaning; the version carries it as a few
readable tags (`version_tags`). A source without it (a one-split run or trial, a config file) has no record:
nothing is made up for it, the promotion says so in one line (`absent`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from training import notes
from training.promotion.register import tag_value
from training.promotion.source import Source
from training.train import EVIDENCE, OBJECTIVE, evidence_line

PREFIX = "development/"  # the record's names on a promotion run
MEAN = (*EVIDENCE, OBJECTIVE)  # across folds, a training run's names
TAG = "development"  # the version's one-line tag; its other tags are `development.*`
FOLD = re.compile(r"^fold/(\d+)/(.+)$")


@dataclass(frozen=True)
class FoldEvidence:
    """One fold of the source's walk-forward run."""

    fold: int  # 1 .. K
    metrics: dict[str, float]  # the source's `fold/<k>/NAME` as NAME: `val/auroc`, `baseline/best/val/auroc`, ...
    best_baseline: str
    report_dates: str  # `FIRST .. LAST`

    def numbers(self) -> str:
        m = self.metrics
        return (f"val_report AUROC {m['val/auroc']:.4f} [95% CI {m['val/auroc_ci_low']:.4f}, "
                f"{m['val/auroc_ci_high']:.4f}]; best baseline {self.best_baseline} {m['baseline/best/val/auroc']:.4f}")

    def line(self) -> str:
        return f"fold {self.fold} (val_report {self.report_dates}): {self.numbers()}"


@dataclass(frozen=True)
class Development:
    """The walk-forward evidence of the source's config (made before this promotion)."""

    source: str  # the source's label
    window: str  # the folds' train window: expanding or rolling
    folds: list[FoldEvidence]
    mean: dict[str, float]  # across folds: `MEAN`
    best_baseline: str  # across folds (chosen on the folds' select parts)

    def metrics(self) -> dict[str, float]:
        """The promotion run's metrics: the source's own names and values under `PREFIX`."""
        out = {f"{PREFIX}fold/{f.fold}/{name}": v for f in self.folds for name, v in f.metrics.items()}
        return out | {PREFIX + key: v for key, v in self.mean.items()}

    def tags(self) -> dict[str, str]:
        """The promotion run's tags: the source's per-fold and across-fold tags under `PREFIX`, K and window."""
        out = {f"{PREFIX}fold/{f.fold}/{key}": value for f in self.folds
               for key, value in (("best_baseline", f.best_baseline), ("val_report_dates", f.report_dates))}
        return out | {f"{PREFIX}best_baseline": self.best_baseline, f"{PREFIX}folds": str(len(self.folds)),
                      f"{PREFIX}window": self.window, f"{PREFIX}source": self.source}

    def mean_line(self) -> str:
        """The mean over folds with its interval, the best baseline and the verdict, by the promotion run's
        names (`development/best/val/auroc ...`)."""
        return PREFIX + evidence_line(self.mean, self.best_baseline)

    def summary(self) -> str:
        """The record in one line."""
        return (f"walk-forward evidence of {self.source}: {len(self.folds)} folds ({self.window} window), mean "
                f"over folds {self.mean_line()}")

    def lines(self) -> list[str]:
        """For people: the summary, then one line per fold."""
        return [self.summary(), *(f"  {f.line()}" for f in self.folds)]

    def note(self) -> str:
        """The Markdown paragraph of the promotion's note and the version's description."""
        return notes.development_note(self.source, len(self.folds), self.window, self.mean_line(),
                                      [f.line() for f in self.folds])

    def version_tags(self) -> dict[str, str]:
        """A few readable tags: the summary, K and window, the mean with its interval, each fold's AUROC and
        dates."""
        m = self.mean
        return {TAG: self.summary(), f"{TAG}.folds": str(len(self.folds)), f"{TAG}.window": self.window,
                **{f"{TAG}.{key.removeprefix('best/').replace('/', '_')}": tag_value(m[key])
                   for key in ("best/val/auroc", "best/val/auroc_ci_low", "best/val/auroc_ci_high")},
                **{f"{TAG}.fold{f.fold}": f"val_report {f.report_dates}: {f.numbers()}" for f in self.folds}}


def read(source: Source) -> Development | None:
    """The source run's walk-forward evidence (its own, or an earlier promotion's under `PREFIX`); None when
    it holds none (a one-split run, a config file)."""
    if source.run_id is None:
        return None
    run = MlflowClient().get_run(source.run_id)
    metrics, tags = run.data.metrics, run.data.tags
    for prefix in ("", PREFIX):
        folds = sorted(int(m.group(1)) for key in metrics if key.startswith(prefix)
                       and (m := FOLD.match(key[len(prefix):])) and m.group(2) == "val/auroc")
        if folds:
            break
    else:
        return None
    # an earlier promotion's record keeps its own source and window; a run's are its own
    label, window = (tags[f"{PREFIX}source"], tags[f"{PREFIX}window"]) if prefix else (
        source.label, source.config.data.window)
    per_fold = []
    for k in folds:
        head = f"{prefix}fold/{k}/"
        per_fold.append(FoldEvidence(k, {key.removeprefix(head): v for key, v in metrics.items()
                                         if key.startswith(head)},
                                     tags[f"{head}best_baseline"], tags[f"{head}val_report_dates"]))
    return Development(label, window, per_fold, {key: metrics[prefix + key] for key in MEAN},
                       tags[f"{prefix}best_baseline"])


def absent(source: Source) -> str:
    """The one line said where the source holds no walk-forward evidence."""
    return (f"walk-forward evidence: none; {source.label} holds no per-fold results (a one-split run or a "
            "config file), so this config has no development record over folds")

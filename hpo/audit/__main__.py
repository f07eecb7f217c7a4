"""`python -m hpo.audit --study NAME [--storage URL] [--fail-on-findings]`: an audit of a study, from its
Optuna storage and its trials' MLflow runs, written as an MLflow run (tag `kind=audit`) nested under the
study's parent run: `audit/report.md`, `audit/report.json` and `audit/plots/*.png`.

The report's sections are described in `hpo.audit.checks`. `--fail-on-findings` exits 1 when `suspicious`
is non-empty.
"""

from __future__ import annotations

import os
import sys

from conventions.cli import SWITCH, Parser, run_main
from conventions.errors import EXIT_FINDINGS
from hpo.audit.checks import HIGH_MARGIN, audit
from hpo.audit.report import log_report, report_lines
from hpo.audit.trials import collect, load_study


def build_parser() -> Parser:
    parser = Parser(prog="python -m hpo.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", "--study-name", dest="study", required=True, help="the study to audit")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage: a journal file path (default ./optuna.journal) or an RDB URL")
    parser.add_argument("--fail-on-findings", **SWITCH,
                        help=f"exit {EXIT_FINDINGS} when the suspicious section is not empty")
    parser.add_argument("--high-margin", type=margin, default=HIGH_MARGIN,
                        help="val AUROC this far above the best baseline's is flagged implausibly high")
    return parser


def margin(text: str) -> float:
    """A number > 0; "" (MLproject's "not given") is the default."""
    if not text.strip():
        return HIGH_MARGIN
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    import optuna

    from training import tracking

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tracking.experiment_id()  # a tracking store that cannot be used fails before anything is read
    study, shown = load_study(args.study, args.storage)
    trials, parent_id = collect(study)
    parent_metrics = mlflow.get_run(parent_id).data.metrics if parent_id else {}
    report = audit(study, trials, parent_metrics, args.high_margin)
    run_id = log_report(args.study, shown, report, trials, parent_id)
    print("\n".join(report_lines(args.study, report)))
    where = f"nested under the study's parent run {parent_id}" if parent_id else "(the study has no parent run)"
    print(f"MLflow: audit run {run_id} (kind=audit) {where}: audit/report.md, audit/report.json, audit/plots/")
    if args.fail_on_findings and report.suspicious:
        print(f"{len(report.suspicious)} suspicious findings (--fail-on-findings): exit {EXIT_FINDINGS}",
              file=sys.stderr)
        return EXIT_FINDINGS
    return 0


def _main(argv: list[str] | None = None) -> None:
    code = main(argv)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    run_main(_main)

"""The names of a study's MLflow runs that `hpo` writes and promotion reads (and the test ledger promotion
writes onto a study's parent run): each name once, imported by both sides (training <- hpo)."""

KIND = "kind"  # every run's kind tag (`tracking.run_context` writes it)
STUDY = "study"  # the kind of a study's parent run
TRIAL = "trial"  # the kind of a trial's run

# tags of a study's parent run (its run name is the study's name)
STORAGE = "storage"  # the study's Optuna storage, masked as `conventions.cli.mask` shows it
BEST_TRIAL = "best_trial"  # the number of the study's best trial so far
BEST_RUN_ID = "best_run_id"  # that trial's run

# tags of a trial's run (nested under the parent: `mlflow.parentRunId`)
STUDY_NAME = "study_name"
TRIAL_NUMBER = "trial_number"

# the test ledger on a study's parent run, written by promotion
LEDGER_COUNT = "test_evaluations"  # metric: the test split's reads so far (step = count)
LEDGER_READ = "test_read."  # tag prefix: one tag per promotion run (`test_read.<run id>`), the read's time

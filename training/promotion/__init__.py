"""The jobs of `python -m training.promote` (the CLI module `training.promote`), one module each: `source`
(what is promoted), `development` (its walk-forward evidence), `heldout` (the data checks), `ensemble`
(retraining and the one evaluation on test), `ledger` (the study's test ledger), `previous` (the alias's
previous holder), `register` (the registry), `run` (the promotion run that joins them)."""

#!/usr/bin/env bash
# Wall time of the demo study (`python -m hpo --demo`, each in a fresh store), idle and beside two busy
# processes, with the thread default (no OMP_NUM_THREADS) and with OMP_NUM_THREADS=2. Each run is cut at
# 12 minutes. Run from the repository root with the project's environment active:
#     bash bench/demo_threads.sh
#     bash bench/demo_threads.sh --tiny   # one case, the demo cut to its 6 forced 20k configs of 1 epoch: a check that it runs
set -u
root=$(pwd)
run() {  # label, busy (0/1), OMP_NUM_THREADS ("" = unset), then flags added to `python -m hpo --demo`
  local dir busy=() start end label=$1 busy_on=$2 threads=$3
  shift 3
  dir=$(mktemp -d)
  if [ "$busy_on" = 1 ]; then for _ in 1 2; do python3 -c "while True: pass" & busy+=($!); done; fi
  start=$(date +%s.%N)
  ( cd "$dir" || exit 1
    if [ -n "$threads" ]; then export OMP_NUM_THREADS=$threads; else unset OMP_NUM_THREADS; fi
    PYTHONPATH="$root" MLFLOW_TRACKING_URI="sqlite:///$dir/mlflow.db" timeout 720 python -m hpo --demo "$@" \
      > out.log 2>&1
    echo "exit $?" >> out.log )
  end=$(date +%s.%N)
  for pid in "${busy[@]}"; do kill "$pid"; done
  printf '%-34s %8.1f s  %s  (%s)\n' "$label" "$(python3 -c "print($end - $start)")" "$(tail -1 "$dir/out.log")" \
    "$(grep -o '\[[0-9]*/[0-9]* trials' "$dir/out.log" | tail -1)"
  rm -rf "$dir"
}
if [ "${1:-}" = --tiny ]; then
  run "idle, thread default, tiny" 0 "" --budgets 20k --trials 6 --max-epochs 1
  exit
fi
run "idle, thread default" 0 ""
run "idle, OMP_NUM_THREADS=2" 0 2
run "2 busy processes, thread default" 1 ""
run "2 busy processes, OMP_NUM_THREADS=2" 1 2

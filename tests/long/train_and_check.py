#!/usr/bin/env python3
"""Long suite: trains a model with `kiln train` (its own train block) and checks one metric
of the finished run against a floor.

    train_and_check.py KILN MODEL.kiln METRIC FLOOR WORKDIR
METRIC is a holdout metric name (auc, accuracy, ...) or test_NAME for the train block's
test set. Prints the figure and the closing line 'N passed, N failed'.
"""
import json
import pathlib
import subprocess
import sys


def main() -> int:
    kiln, model, metric, floor, work = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]
    run = pathlib.Path(work) / model.stem
    subprocess.run([kiln, "train", str(model), "--out", str(run)], check=True)
    result = subprocess.run([kiln, "eval", str(model), "--run", str(run)], check=True, capture_output=True, text=True)
    # The first line is the metrics as JSON; a classifier's confusion matrix follows it.
    metrics = json.loads(result.stdout.splitlines()[0])
    value = metrics[metric]
    ok = value >= floor
    print(f"{model.name}: {metric} = {value:.4f} (floor {floor})")
    print(f"{1 if ok else 0} passed, {0 if ok else 1} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

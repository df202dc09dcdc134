"""A small study run from Python: symmetry of zero / constant / Xavier init on MNIST-1D.

Run: python examples/lab_sweep.py [STORE]   (default: a temporary file)
"""

import sys
import tempfile
from pathlib import Path

from initlab.lab import Store, load_study, make_executor, run_study

STUDY = {
    "name": "symmetry-example",
    "dataset": {"name": "mnist1d"},
    "model": {"depth": 2, "width": 100, "activation": "tanh", "weight_init": "glorot_normal"},
    "training": {"optimizer": "sgd", "lr": 0.1, "batch_size": 128, "steps": 300, "log_every": 100},
    "grid": {"model.weight_init": ["zeros", {"scheme": "constant", "value": 0.5}, "glorot_normal"]},
    "metrics": {"keep": ["train_loss", "test_accuracy", "distinct_units"]},
}


def main() -> None:
    store_path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "runs.sqlite"
    study = load_study(STUDY)
    executor = make_executor("inline")
    with Store(store_path) as store:
        report = run_study(study, store, executor)
        for row in store.runs(study=study.name):
            init = row["point"]["model.weight_init"]
            name = init if isinstance(init, str) else f"{init['scheme']}({init.get('value', '')})"
            print(f"{name:>16}: distinct units {row['summary']['distinct_units']}, "
                  f"test accuracy {row['summary']['test_accuracy']:.3f}")
    print(f"{report.trained} trained, {report.already_stored} already stored, in {store_path}")


if __name__ == "__main__":
    main()

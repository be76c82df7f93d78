"""The built-in methods' budget knobs: each defined once, shared by the methods using it.

Upper bounds keep a typo (``--R 1e12``) from sampling for hours.
"""

from __future__ import annotations

from automl_core.search.methods._registry import Knob

EPOCHS = Knob(
    "epochs",
    5,
    (1, 1000),
    "epochs per trial",
    shapes_plan=False,
    title="Epochs per trial",
    description="Full passes over the training data for every configuration.",
)
# Trials, not rows: the minibatch size is the search space's own batch_size key.
BATCH_SIZE = Knob(
    "batch_size", 4, (1, 10_000), "trials per batch (not the minibatch: the space's batch_size)"
)
N = Knob("n", 8, (1, 10_000), "number of configurations")
R = Knob("R", 9, (1, 10_000), "max epochs per trial")
ETA = Knob("eta", 3, (2, 10_000), "reduction factor")
SKIP_LAST = Knob("skip_last", 0, (0, 10_000), "rungs to drop")
BATCHES = Knob("batches", 3, (1, 10_000), "number of batches")
# Its bounds depend on batches x batch_size (hyperopt_search.startup_trials checks it);
# a DAG spec does not take it (it never did).
STARTUP_TRIALS = Knob(
    "startup_trials",
    None,
    None,
    "trials sampled at random before TPE proposes (default: sized to the budget, "
    "min(20, max(2, batches x batch-size / 3)))",
    in_spec=False,
)

"""The MOP scheduler at scale, on the simulated clock: decisions per second, utilisation.

Run from the repository root:

    .venv/bin/python benchmarks/bench_scheduler_scale.py

Every model trains for 2 epochs with evaluation, so one run makes
workers x models x 2 epochs x 2 passes decisions. A model's cost per visit is drawn once
from a seeded lognormal (sigma 0.5), so models differ in speed; an eval visit costs a
quarter of a train visit. Nothing runs: the simulated executor advances a clock, and the
real runner (``HopperRunner``) handles every result, so decisions per second include
what a search pays per job besides the scheduler (epoch metrics, the job log).

The 1,000 workers x 10,000 models run would make 40 million decisions, several minutes
of pure Python whatever the scheduler does (the simulated executor and the event objects
cost about as much as the decision), so it stops after ``--max-decisions`` (default
500,000) and its utilisation covers the simulated time up to then, tail excluded. The
smaller runs go to completion, so their utilisation includes the tail of the last
epoch. ``makespan/bound`` divides the makespan by a lower bound that no schedule beats:
the larger of (total work / workers) and the slowest model's own chain of visits.
Compare the columns within one run of this script, not with numbers from other machines.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from automl_core.executors.simulated import SimulatedExecutor, simulate  # noqa: E402
from automl_core.mop.scheduler import MopScheduler  # noqa: E402
from automl_core.mop.types import Job, JobKind, ModelAdded  # noqa: E402

EPOCHS = 2
EVAL_FRACTION = 0.25  # an eval visit is a forward pass only


@dataclass
class Row:
    workers: int
    models: int
    visit_order: str
    decisions: int
    completed: bool
    real_seconds: float
    decisions_per_second: float
    scheduler_us: float  # real microseconds inside scheduler.handle per decision
    utilisation: float
    makespan_over_bound: float | None


def run(
    workers: int, models: int, *, seed: int, max_decisions: int | None, seeded_order: bool
) -> Row:
    """Simulate ``models`` models on ``workers`` workers and measure it."""
    speed = np.random.default_rng(seed).lognormal(0.0, 0.5, models).tolist()

    def cost(job: Job) -> float:
        per_visit = speed[job.model_id]
        return per_visit if job.kind is JobKind.TRAIN else EVAL_FRACTION * per_visit

    partitions = list(range(workers))
    scheduler = MopScheduler(partitions, seed=seed, evaluate=True, seeded_order=seeded_order)
    executor = SimulatedExecutor(partitions, cost)
    added = [ModelAdded(m, 0, EPOCHS) for m in range(models)]
    started = time.perf_counter()
    result = simulate(scheduler, executor, added, max_decisions=max_decisions, keep_log=False)
    real = time.perf_counter() - started
    chain = (1 + EVAL_FRACTION) * EPOCHS * workers  # visits of one model, in cost units
    bound = max(chain * sum(speed) / workers, chain * max(speed))
    return Row(
        workers=workers,
        models=models,
        visit_order="seeded" if seeded_order else "free",
        decisions=result.decisions,
        completed=result.completed,
        real_seconds=real,
        decisions_per_second=result.decisions / real,
        scheduler_us=1e6 * result.scheduler_seconds / result.decisions,
        utilisation=result.utilisation,
        makespan_over_bound=result.makespan / bound if result.completed else None,
    )


HEADER = (
    "| workers | models | visit order | decisions | run | real s | decisions/s "
    "| scheduler µs/decision | utilisation (simulated) | makespan/bound |\n"
    "|---:|---:|---|---:|---|---:|---:|---:|---:|---:|"
)


def markdown(row: Row) -> str:
    ratio = "-" if row.makespan_over_bound is None else f"{row.makespan_over_bound:.3f}"
    run_kind = "complete" if row.completed else "stopped early"
    return (
        f"| {row.workers:,} | {row.models:,} | {row.visit_order} | {row.decisions:,} | {run_kind} "
        f"| {row.real_seconds:.2f} | {row.decisions_per_second:,.0f} | {row.scheduler_us:.1f} "
        f"| {row.utilisation:.3f} | {ratio} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-decisions",
        type=int,
        default=500_000,
        help="stop the 1,000 x 10,000 run after this many decisions (0: run to the end)",
    )
    args = parser.parse_args(argv)
    cap = args.max_decisions or None
    plans = [(8, 64, None), (100, 1_000, None), (1_000, 10_000, cap)]
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}; epochs={EPOCHS}, evaluate on")
    print(HEADER, flush=True)
    for workers, models, limit in plans:
        for seeded in (True, False):
            row = run(workers, models, seed=args.seed, max_decisions=limit, seeded_order=seeded)
            print(markdown(row), flush=True)


if __name__ == "__main__":
    main()

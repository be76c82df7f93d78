"""Where sub-epochs run: the executor contract, Dask workers, and a simulated clock.

The Dask executor is imported from its module (``automl_core.executors.dask_executor``)
so that importing this package stays free of dask and torch.
"""

from automl_core.executors.base import Executor, JobResult, StateLostError, Visit
from automl_core.executors.simulated import SimulatedExecutor

__all__ = ["Executor", "JobResult", "SimulatedExecutor", "StateLostError", "Visit"]

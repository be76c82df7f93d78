"""Where sub-epochs run: Dask workers, and a simulated clock (the contract is mop.executor).

The Dask executor is imported from its module (``automl_core.executors.dask_executor``)
so that importing this package stays free of dask and torch.
"""

from automl_core.executors.simulated import SimulatedExecutor
from automl_core.mop.executor import Executor, JobResult, StateLostError, Visit

__all__ = ["Executor", "JobResult", "SimulatedExecutor", "StateLostError", "Visit"]

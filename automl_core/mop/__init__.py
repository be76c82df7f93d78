"""Model hopper parallelism: the pure scheduler and its vocabulary (``types``).

The runner that carries the scheduler's instructions out is ``automl_core.mop.runner``.
"""

from automl_core.mop.joblog import check_job_log, job_log_problems
from automl_core.mop.scheduler import MopScheduler

__all__ = ["MopScheduler", "check_job_log", "job_log_problems"]

"""Too few rows for the partitions: the message offers only fixes that apply."""

from __future__ import annotations

import pytest

from automl_core.data.prepare import _check_sizes
from automl_core.data.scan import SourceSummary
from automl_core.errors import UserInputError


def _summary(n_train: int, n_test: int) -> SourceSummary:
    return SourceSummary("t", "label", True, (4,), [0, 1], n_train, n_test, "t")


def test_one_partition_is_not_told_to_use_fewer() -> None:
    # With --partitions 1 it said "use fewer --partitions".
    with pytest.raises(UserInputError) as err:
        _check_sizes(_summary(10, 0), 1, None)
    assert "fewer than the 1 partition: pass --validation-fraction F." in str(err.value)
    with pytest.raises(UserInputError) as err:
        _check_sizes(_summary(0, 5), 1, None)
    assert str(err.value).endswith("fewer than the 1 partition: load more rows.")


def test_several_partitions_get_both_fixes() -> None:
    with pytest.raises(UserInputError) as err:
        _check_sizes(_summary(10, 1), 2, None)
    assert "use fewer --partitions or pass --validation-fraction F." in str(err.value)
    with pytest.raises(UserInputError) as err:
        _check_sizes(_summary(10, 0), 3, 0.1)
    assert "use fewer --partitions or give a larger one." in str(err.value)

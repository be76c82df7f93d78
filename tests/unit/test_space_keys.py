"""A search-space key that training never reads is named before the experiment exists."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from torch import nn

from automl_core.errors import UserInputError
from automl_core.experiment.space_keys import check_space_on_data, unread_space_keys
from automl_core.space import SearchSpace
from automl_core.training.engine import keys_read
from automl_core.training.registry import register_architecture, unregister_architecture


def test_keys_read_are_the_engines_the_optimisers_and_the_builders() -> None:
    read = keys_read({"architecture": "mlp", "hidden": 8, "optimizer": "sgd"}, (64,), 10)
    assert {"architecture", "batch_size", "optimizer", "lr", "momentum", "hidden"} <= read
    assert {"depth", "dropout"} <= read  # read with their defaults
    adam = keys_read({"optimizer": "adam", "momentum": 0.9}, (64,), 10)
    assert "momentum" not in adam and "lr" in adam


def test_a_typo_and_a_key_no_option_reads_are_named_with_the_keys_they_resemble() -> None:
    space = SearchSpace.from_dict(
        {"architecture": "mlp", "hiden": [32, 64], "optimizer": "adam", "momentum": 0.9}
    )
    assert unread_space_keys(space, (64,), 10) == {"hiden": ["hidden"], "momentum": []}


def test_keys_each_read_by_some_option_are_fine() -> None:
    # hidden is read by the mlp configurations only, channels by the cnn1d ones.
    space = SearchSpace.from_dict(
        {"architecture": ["mlp", "cnn1d"], "hidden": [16, 32], "channels": [4, 8], "lr": 0.01}
    )
    assert unread_space_keys(space, (1, 40), 10) == {}


@pytest.fixture
def wide_net() -> Iterator[None]:
    @register_architecture("wide_net_for_keys")
    def build(config: Any, input_shape: Any, num_classes: int) -> nn.Module:
        return nn.Linear(int(input_shape[-1]) * int(config.get("width", 1)), num_classes)

    yield
    unregister_architecture("wide_net_for_keys")


def test_a_users_architecture_counts_as_a_built_in(
    wide_net: None, caplog: pytest.LogCaptureFixture
) -> None:
    space = SearchSpace.from_dict({"architecture": "wide_net_for_keys", "width": [1, 1]})
    assert unread_space_keys(space, (8,), 2) == {}
    typo = SearchSpace.from_dict({"architecture": "wide_net_for_keys", "widht": [1, 2]})
    with caplog.at_level(logging.WARNING):
        check_space_on_data(typo, (8,), 2)
    assert "search-space key 'widht'" in caplog.text and "did you mean 'width'" in caplog.text


@pytest.fixture
def odd_readers() -> Iterator[None]:
    # Builders that read the configuration whole (a copy, a dict check, `**`) or fail on
    # it with their own exception: they train, so the advice must never stop a search.
    @register_architecture("copy_reader_for_keys")
    def copying(config: Any, input_shape: Any, num_classes: int) -> nn.Module:
        assert isinstance(config, dict)
        width = config.copy().get("width", 1)
        return nn.Linear(int(input_shape[-1]) * int(width), num_classes)

    @register_architecture("picky_reader_for_keys")
    def picky(config: Any, input_shape: Any, num_classes: int) -> nn.Module:
        raise ValueError("not on a Tuesday")

    yield
    unregister_architecture("copy_reader_for_keys")
    unregister_architecture("picky_reader_for_keys")


def test_builders_that_read_oddly_get_no_false_warning_and_never_stop_a_search(
    odd_readers: None,
) -> None:
    copy = SearchSpace.from_dict({"architecture": "copy_reader_for_keys", "width": [1, 2]})
    assert unread_space_keys(copy, (8,), 2) == {}
    picky = SearchSpace.from_dict({"architecture": "picky_reader_for_keys", "widht": [1, 2]})
    assert unread_space_keys(picky, (8,), 2) == {}


def test_a_space_that_cannot_take_the_data_is_refused_and_a_partial_one_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A review's 21-feature CSV with the README's example space: every cnn2d trial
    # failed in training ("a square number of features"), half the search's budget.
    mixed = SearchSpace.from_dict({"architecture": ["mlp", "cnn2d"], "batch_size": 32})
    with caplog.at_level(logging.WARNING):
        check_space_on_data(mixed, (21,), 3)
    assert "1 of 2 configurations read from the search space cannot train" in caplog.text
    assert "square number of features" in caplog.text
    only_cnn = SearchSpace.from_dict({"architecture": "cnn2d", "batch_size": 32})
    with pytest.raises(UserInputError, match=r"No configuration .* shape \[21\], 3 classes\): "
                       r"The architecture 'cnn2d' takes"):  # fmt: skip
        check_space_on_data(only_cnn, (21,), 3)
    check_space_on_data(only_cnn, (64,), 3)  # 8 x 8: it builds

"""The architecture registry and the built-in architectures' shapes and hyperparameters."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import torch
from torch import nn

from automl_core.errors import UserInputError
from automl_core.training import (
    architecture_names,
    build_model,
    register_architecture,
    unregister_architecture,
)
from automl_core.training.engine import validate_config

BUILTINS = ["cnn1d", "cnn2d", "mlp", "resnet"]


@pytest.fixture
def temp_name() -> Iterator[str]:
    """A registry name that is removed again after the test."""
    name = "test_tiny_linear"
    yield name
    if name in architecture_names():
        unregister_architecture(name)


def test_builtins_are_registered() -> None:
    assert set(BUILTINS) <= set(architecture_names())
    assert architecture_names() == sorted(architecture_names())


def test_register_and_build_user_architecture(temp_name: str) -> None:
    @register_architecture(temp_name)
    def build(config: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes))

    assert temp_name in architecture_names()
    model = build_model({"architecture": temp_name}, (5,), 3)
    assert model(torch.zeros(2, 5)).shape == (2, 3)


def test_duplicate_name_raises_unless_replace(temp_name: str) -> None:
    def first(config: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int):
        return nn.Linear(input_shape[0], num_classes)

    def second(config: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int):
        return nn.Sequential(nn.Linear(input_shape[0], num_classes))

    register_architecture(temp_name)(first)
    with pytest.raises(ValueError, match="already registered.*replace=True"):
        register_architecture(temp_name)(second)
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("mlp")(second)
    register_architecture(temp_name, replace=True)(second)
    assert isinstance(build_model({"architecture": temp_name}, (4,), 2), nn.Sequential)


def test_builder_must_return_a_module(temp_name: str) -> None:
    register_architecture(temp_name)(lambda config, shape, k: "not a module")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        build_model({"architecture": temp_name}, (4,), 2)


@pytest.mark.parametrize("name", ["resnet50", "os.system", "torch.nn.Linear", "", 3, "MLP"])
def test_unknown_name_lists_registered_names(name: object) -> None:
    # A string is only a registry key: dotted paths are not imported.
    with pytest.raises(UserInputError, match="'architecture'.*cnn1d, cnn2d, mlp, resnet"):
        build_model({"architecture": name}, (4,), 2)


def test_default_architecture_is_mlp() -> None:
    assert isinstance(build_model({}, (4,), 2), nn.Sequential)


@pytest.mark.parametrize(
    ("name", "input_shape"),
    [
        ("mlp", (64,)),
        ("mlp", (3, 4, 5)),
        ("cnn1d", (20,)),
        ("cnn1d", (3, 16)),
        ("cnn1d", (1,)),
        ("cnn2d", (64,)),
        ("cnn2d", (8, 8)),
        ("cnn2d", (3, 8, 6)),
        ("cnn2d", (1, 1, 3)),
        ("resnet", (64,)),
        ("resnet", (3, 32, 32)),
        ("resnet", (2, 1, 5)),
    ],
)
def test_builtins_map_rows_to_logits(name: str, input_shape: tuple[int, ...]) -> None:
    config = {"architecture": name, "channels": 4, "hidden": 8, "kernel_size": 1, "blocks": 1}
    model = build_model(config, input_shape, 5)
    model.train()
    # A batch of one: BatchNorm (resnet) must still see more than one value per channel.
    for n in (1, 3):
        assert model(torch.randn(n, *input_shape)).shape == (n, 5)


def test_integral_float_hyperparameters_are_used_as_ints() -> None:
    model = build_model({"architecture": "mlp", "hidden": 16.0, "depth": 3.0}, (10,), 4)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (10, 16),
        (16, 16),
        (16, 16),
        (16, 4),
    ]


def test_mlp_depth_zero_is_a_linear_classifier() -> None:
    model = build_model({"architecture": "mlp", "depth": 0}, (3, 2), 4)
    assert [type(m) for m in model.children()] == [nn.Flatten, nn.Linear]


def test_resnet_blocks_and_channels() -> None:
    model = build_model({"architecture": "resnet", "channels": 4, "blocks": 2}, (3, 32, 32), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    # stem + 3 stages x 2 blocks x 2 convs
    assert len(convs) == 1 + 3 * 2 * 2
    assert {c.out_channels for c in convs} == {4, 8, 16}
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) >= len(convs)


def test_dropout_layers_appear_only_when_asked() -> None:
    for name in BUILTINS:
        plain = build_model({"architecture": name, "channels": 2}, (16,), 2)
        dropped = build_model({"architecture": name, "channels": 2, "dropout": 0.25}, (16,), 2)
        assert not any(isinstance(m, nn.Dropout) for m in plain.modules())
        assert any(isinstance(m, nn.Dropout) and m.p == 0.25 for m in dropped.modules())


@pytest.mark.parametrize(
    ("config", "input_shape", "match"),
    [
        ({"architecture": "cnn2d"}, (10,), r"cnn2d.*\[10\].*'cnn1d' or 'mlp'"),
        ({"architecture": "resnet"}, (3, 4, 5, 6), r"resnet.*\[3, 4, 5, 6\]"),
        ({"architecture": "resnet"}, (1,), "at least 2 pixels"),
        ({"architecture": "cnn1d"}, (3, 8, 8), r"cnn1d.*'cnn2d' or\s+'resnet'"),
        ({"architecture": "cnn2d", "kernel_size": 9}, (64,), "'kernel_size' is 9.*at most 8"),
        ({"architecture": "cnn1d", "kernel_size": 0}, (64,), "'kernel_size' is 0"),
        ({"architecture": "mlp", "hidden": 64.5}, (4,), "'hidden' is 64.5"),
        ({"architecture": "mlp", "hidden": 0}, (4,), "'hidden' is 0.*>= 1"),
        ({"architecture": "mlp", "depth": -1}, (4,), "'depth' is -1"),
        ({"architecture": "cnn2d", "depth": 0}, (64,), "'depth' is 0"),
        ({"architecture": "mlp", "dropout": 1.0}, (4,), r"'dropout' is 1.0.*\[0.0, 1.0\)"),
        ({"architecture": "cnn1d", "dropout": -0.1}, (4,), "'dropout' is -0.1"),
        ({"architecture": "resnet", "blocks": 0}, (64,), "'blocks' is 0"),
        ({"architecture": "resnet", "channels": "16"}, (64,), "'channels' is '16'"),
        ({"architecture": "mlp"}, (0,), "input shape"),
        ({"architecture": "mlp"}, (), "input shape"),
    ],
)
def test_user_errors_name_the_input(
    config: dict[str, Any], input_shape: tuple[int, ...], match: str
) -> None:
    with pytest.raises(UserInputError, match=match):
        build_model(config, input_shape, 3)
    # validate_config reports the same error without building real weights.
    with pytest.raises(UserInputError, match=match):
        validate_config(config, input_shape, 3)


def test_num_classes_below_two_is_rejected() -> None:
    with pytest.raises(UserInputError, match="at least 2"):
        build_model({}, (4,), 1)


def test_validate_config_allocates_nothing_for_a_large_model() -> None:
    # 100k x 16k weights, then 16k x 16k twice, would be 8.7 GB; on the meta device it
    # costs nothing. (16,384 is the most "hidden" takes: architectures.HIDDEN.)
    validate_config({"architecture": "mlp", "hidden": 16_384, "depth": 3}, (100_000,), 2)

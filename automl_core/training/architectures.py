"""The built-in architectures: "mlp", "cnn1d", "cnn2d" and "resnet".

Every model takes a float32 batch ``[n, *input_shape]`` and returns logits
``[n, num_classes]``. Models reshape their input themselves (a view, no copy), so the
same packed rows can feed an MLP (flat) or a CNN (digits' 64 features as 1x8x8).

Hyperparameters (defaults in brackets; see ``params.py`` for coercion rules):

- mlp: ``hidden`` [128] units per hidden layer, ``depth`` [2] hidden layers (0 gives a
  linear softmax classifier), ``dropout`` [0.0] after each hidden layer.
- cnn1d: ``channels`` [32] filters per conv layer, ``kernel_size`` [3], ``depth`` [2]
  conv blocks (conv, ReLU, max-pool by 2), ``dropout`` [0.0] before the classifier.
  Input ``[F]`` is read as 1 channel x F steps, ``[C, L]`` as C channels x L steps.
- cnn2d: as cnn1d with 2-d convolutions. Input ``[C, H, W]``, ``[H, W]`` (1 channel) or
  ``[F]`` where F is a perfect square (1 x sqrt(F) x sqrt(F)).
- resnet: a CIFAR-style ResNet (He et al. 2016): a 3x3 stem, three stages of ``blocks``
  [2] basic residual blocks each (3x3 conv, BatchNorm, ReLU, twice, plus a shortcut)
  with ``channels`` [16], 2x and 4x filters, global average pooling, ``dropout`` [0.0],
  a linear classifier. Images as for cnn2d.

The integers are declared once below (``IntParam``: default and limits); the builders
read them through the declarations and register them, so a search space is held to the
same limits before an experiment is written. The maxima are past any real use and keep
one layer within memory (the product of several can still be large: the data's shape
is only known per trial):

- ``hidden`` <= 16,384: one 16,384 x 16,384 layer is 268M weights (1 GiB in float32).
- ``channels`` <= 1,024 for cnn1d/cnn2d (a 3x3 conv of 1,024 -> 1,024 is 9.4M weights),
  <= 512 for resnet, whose last stage is 4x as wide (2,048 filters; Wide ResNets use 160).
- ``kernel_size`` <= 128; ``depth`` <= 256; ``blocks`` <= 256 per stage (ResNet-1202
  has 200).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from automl_core.errors import UserInputError
from automl_core.training.params import IntParam, get_float
from automl_core.training.registry import register_architecture

__all__ = ["Reshape", "image_layout", "sequence_layout"]

HIDDEN = IntParam("hidden", 128, 1, 16_384)
MLP_DEPTH = IntParam("depth", 2, 0, 256)
CONV_DEPTH = IntParam("depth", 2, 1, 256)
CONV_CHANNELS = IntParam("channels", 32, 1, 1_024)
KERNEL_SIZE = IntParam("kernel_size", 3, 1, 128)
RESNET_CHANNELS = IntParam("channels", 16, 1, 512)
RESNET_BLOCKS = IntParam("blocks", 2, 1, 256)


class Reshape(nn.Module):
    """Reshapes each row of a batch to ``shape`` (a view when the input is contiguous)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


def sequence_layout(input_shape: tuple[int, ...], architecture: str) -> tuple[int, int]:
    """``(channels, length)`` for a 1-d convolution over rows of ``input_shape``.

    Raises:
        UserInputError: the shape has more than two dimensions.
    """
    if len(input_shape) == 1:
        return 1, input_shape[0]
    if len(input_shape) == 2:
        return input_shape[0], input_shape[1]
    raise UserInputError(
        f"The architecture {architecture!r} takes rows of shape [features] or "
        f"[channels, length], but the data has shape {list(input_shape)}; use 'cnn2d' or "
        "'resnet' for images, or 'mlp' for any shape."
    )


def image_layout(input_shape: tuple[int, ...], architecture: str) -> tuple[int, int, int]:
    """``(channels, height, width)`` for a 2-d convolution over rows of ``input_shape``.

    Raises:
        UserInputError: a flat row whose length is not a perfect square, or more than
            three dimensions.
    """
    if len(input_shape) == 3:
        return input_shape[0], input_shape[1], input_shape[2]
    if len(input_shape) == 2:
        return 1, input_shape[0], input_shape[1]
    if len(input_shape) == 1:
        side = math.isqrt(input_shape[0])
        if side * side == input_shape[0]:
            return 1, side, side
    raise UserInputError(
        f"The architecture {architecture!r} takes images of shape [channels, height, width], "
        f"[height, width] or [features] with a square number of features, but the data has "
        f"shape {list(input_shape)}; store the dataset with its image shape, or use "
        "'cnn1d' or 'mlp'."
    )


def _dropout(config: Mapping[str, Any]) -> float:
    return get_float(config, "dropout", 0.0, minimum=0.0, maximum=1.0, max_inclusive=False)


def _kernel_size(config: Mapping[str, Any], largest: int, architecture: str) -> int:
    kernel_size = KERNEL_SIZE.read(config)
    if kernel_size > largest:
        raise UserInputError(
            f"The value of 'kernel_size' is {kernel_size}, but the input of {architecture!r} "
            f"is only {largest} wide; use a kernel_size of at most {largest}."
        )
    return kernel_size


def _head(features: int, num_classes: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Flatten()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(features, num_classes))
    return layers


@register_architecture("mlp", params=(HIDDEN, MLP_DEPTH))
def build_mlp(
    config: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int
) -> nn.Module:
    """A multi-layer perceptron over the flattened row."""
    hidden = HIDDEN.read(config)
    depth = MLP_DEPTH.read(config)
    dropout = _dropout(config)
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@register_architecture("cnn1d", params=(CONV_CHANNELS, CONV_DEPTH, KERNEL_SIZE))
def build_cnn1d(
    config: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int
) -> nn.Module:
    """A 1-d CNN for sequences ([C, L]) or feature vectors ([F] as 1 x F)."""
    in_channels, length = sequence_layout(input_shape, "cnn1d")
    channels = CONV_CHANNELS.read(config)
    depth = CONV_DEPTH.read(config)
    kernel_size = _kernel_size(config, length, "cnn1d")
    dropout = _dropout(config)
    layers: list[nn.Module] = [Reshape((in_channels, length))]
    for _ in range(depth):
        layers += [nn.Conv1d(in_channels, channels, kernel_size, padding="same"), nn.ReLU()]
        # Stop pooling at length 1 rather than fail: deep nets on short rows stay valid.
        if length >= 2:
            layers.append(nn.MaxPool1d(2))
            length //= 2
        in_channels = channels
    layers += _head(channels * length, num_classes, dropout)
    return nn.Sequential(*layers)


@register_architecture("cnn2d", params=(CONV_CHANNELS, CONV_DEPTH, KERNEL_SIZE))
def build_cnn2d(
    config: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int
) -> nn.Module:
    """A 2-d CNN for images ([C, H, W], [H, W], or a square [F])."""
    in_channels, height, width = image_layout(input_shape, "cnn2d")
    channels = CONV_CHANNELS.read(config)
    depth = CONV_DEPTH.read(config)
    kernel_size = _kernel_size(config, min(height, width), "cnn2d")
    dropout = _dropout(config)
    layers: list[nn.Module] = [Reshape((in_channels, height, width))]
    for _ in range(depth):
        layers += [nn.Conv2d(in_channels, channels, kernel_size, padding="same"), nn.ReLU()]
        pool = (2 if height >= 2 else 1, 2 if width >= 2 else 1)
        if pool != (1, 1):
            layers.append(nn.MaxPool2d(pool))
            height, width = height // pool[0], width // pool[1]
        in_channels = channels
    layers += _head(channels * height * width, num_classes, dropout)
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


@register_architecture("resnet", params=(RESNET_CHANNELS, RESNET_BLOCKS))
def build_resnet(
    config: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int
) -> nn.Module:
    """A small CIFAR-style ResNet (3 stages of basic blocks) for images."""
    in_channels, height, width = image_layout(input_shape, "resnet")
    if height * width < 2:
        # BatchNorm needs more than one value per channel in a batch of one row.
        raise UserInputError(
            f"The architecture 'resnet' needs images of at least 2 pixels, but the data has "
            f"shape {list(input_shape)}; use 'mlp' for this data."
        )
    channels = RESNET_CHANNELS.read(config)
    blocks = RESNET_BLOCKS.read(config)
    dropout = _dropout(config)
    layers: list[nn.Module] = [
        Reshape((in_channels, height, width)),
        nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
    ]
    width_in = channels
    for stage in range(3):
        out = channels * 2**stage
        # Halve the resolution only while it stays >= 2x2, so 8x8 digits go 8 -> 4 -> 2
        # and 32x32 CIFAR 32 -> 16 -> 8, and BatchNorm always sees several values.
        stride = 2 if stage > 0 and min(height, width) >= 4 else 1
        for block in range(blocks):
            layers.append(BasicBlock(width_in, out, stride if block == 0 else 1))
            width_in = out
        if stride == 2:
            height, width = (height + 1) // 2, (width + 1) // 2
    layers += [nn.AdaptiveAvgPool2d(1)]
    layers += _head(width_in, num_classes, dropout)
    return nn.Sequential(*layers)

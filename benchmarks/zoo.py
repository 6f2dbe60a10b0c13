"""Layer graphs of common networks built with the mapper's layer builders (shapes only, int8).

``resnet18()`` (224x224: its 20 convs and the classifier) and ``mobilenet_v2()`` (1.0, 224x224:
convs, depthwise convs, residual adds, global pooling, classifier), as in torchvision's definitions;
for breadth, ``resnet50()``, ``vgg16()`` and ``mobilenet_v1()`` (224x224, their convs and
classifiers).
"""

from __future__ import annotations

import networkx as nx

import mapper


def resnet18() -> nx.DiGraph:
    """ResNet-18 at 224x224: conv1 (7x7/2), 16 3x3 convs in four stages, 3 1x1/2 downsample convs, FC."""
    layers = [mapper.conv2d("conv1", input_size=(224, 224), in_channels=3, out_channels=64, kernel=7, stride=2,
                            padding=3)]
    size, channels = 56, 64
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            prefix = f"layer{stage}.{block}"
            layers.append(mapper.conv2d(f"{prefix}.conv1", input_size=(size, size), in_channels=channels,
                                        out_channels=width, kernel=3, stride=stride, padding=1))
            if stride == 2:
                layers.append(mapper.conv2d(f"{prefix}.downsample", input_size=(size, size), in_channels=channels,
                                            out_channels=width, kernel=1, stride=2, padding=0))
                size //= 2
            layers.append(mapper.conv2d(f"{prefix}.conv2", input_size=(size, size), in_channels=width,
                                        out_channels=width, kernel=3, stride=1, padding=1))
            channels = width
    layers.append(mapper.dense("fc", in_features=512, out_features=1000))
    return mapper.layer_graph(layers, name="resnet18")


def mobilenet_v2() -> nx.DiGraph:
    """MobileNetV2 1.0 at 224x224: stem conv, 17 inverted residual blocks (expand 1x1, depthwise 3x3,
    project 1x1, residual add where shapes allow), last 1x1 conv, global average pool, FC."""
    layers = [mapper.conv2d("stem", input_size=(224, 224), in_channels=3, out_channels=32, kernel=3, stride=2,
                            padding=1)]
    size, channels = 112, 32
    block = 0
    for expand, width, repeats, first_stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                                  (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for r in range(repeats):
            stride = first_stride if r == 0 else 1
            hidden = channels * expand
            prefix = f"block{block}"
            if expand != 1:
                layers.append(mapper.conv2d(f"{prefix}.expand", input_size=(size, size), in_channels=channels,
                                            out_channels=hidden, kernel=1))
            layers.append(mapper.depthwise(f"{prefix}.dw", input_size=(size, size), channels=hidden, kernel=3,
                                           stride=stride, padding=1))
            out_size = size // stride
            layers.append(mapper.conv2d(f"{prefix}.project", input_size=(out_size, out_size), in_channels=hidden,
                                        out_channels=width, kernel=1))
            if stride == 1 and channels == width:
                layers.append(mapper.add(f"{prefix}.add", channels=width, size=(out_size, out_size)))
            size, channels = out_size, width
            block += 1
    layers.append(mapper.conv2d("last", input_size=(size, size), in_channels=channels, out_channels=1280, kernel=1))
    layers.append(mapper.pool("avgpool", input_size=(size, size), channels=1280, kernel=size))
    layers.append(mapper.dense("fc", in_features=1280, out_features=1000))
    return mapper.layer_graph(layers, name="mobilenet_v2")


def resnet50() -> nx.DiGraph:
    """ResNet-50 at 224x224: conv1 (7x7/2), 16 bottleneck blocks (1x1, 3x3 with the stride, 1x1 x4;
    a 1x1 downsample conv in each stage's first block), FC."""
    layers = [mapper.conv2d("conv1", input_size=(224, 224), in_channels=3, out_channels=64, kernel=7, stride=2,
                            padding=3)]
    size, channels = 56, 64
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        for block in range(blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            prefix = f"layer{stage}.{block}"
            layers.append(mapper.conv2d(f"{prefix}.conv1", input_size=(size, size), in_channels=channels,
                                        out_channels=width, kernel=1))
            layers.append(mapper.conv2d(f"{prefix}.conv2", input_size=(size, size), in_channels=width,
                                        out_channels=width, kernel=3, stride=stride, padding=1))
            if block == 0:
                layers.append(mapper.conv2d(f"{prefix}.downsample", input_size=(size, size), in_channels=channels,
                                            out_channels=4 * width, kernel=1, stride=stride))
            size //= stride
            layers.append(mapper.conv2d(f"{prefix}.conv3", input_size=(size, size), in_channels=width,
                                        out_channels=4 * width, kernel=1))
            channels = 4 * width
    layers.append(mapper.dense("fc", in_features=2048, out_features=1000))
    return mapper.layer_graph(layers, name="resnet50")


def vgg16() -> nx.DiGraph:
    """VGG-16 at 224x224: 13 3x3 convs in five stages (2x2 max pooling between them), three FCs."""
    layers, size, channels = [], 224, 3
    for stage, (width, convs) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), start=1):
        for i in range(convs):
            layers.append(mapper.conv2d(f"conv{stage}_{i + 1}", input_size=(size, size), in_channels=channels,
                                        out_channels=width, kernel=3, padding=1))
            channels = width
        layers.append(mapper.pool(f"pool{stage}", input_size=(size, size), channels=width, kernel=2))
        size //= 2
    layers.append(mapper.dense("fc6", in_features=7 * 7 * 512, out_features=4096))
    layers.append(mapper.dense("fc7", in_features=4096, out_features=4096))
    layers.append(mapper.dense("fc8", in_features=4096, out_features=1000))
    return mapper.layer_graph(layers, name="vgg16")


def mobilenet_v1() -> nx.DiGraph:
    """MobileNetV1 1.0 at 224x224: stem conv, 13 depthwise 3x3 + pointwise 1x1 pairs, global average
    pool, FC."""
    layers = [mapper.conv2d("stem", input_size=(224, 224), in_channels=3, out_channels=32, kernel=3, stride=2,
                            padding=1)]
    size, channels = 112, 32
    for i, (width, stride) in enumerate(((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
                                         (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))):
        layers.append(mapper.depthwise(f"dw{i}", input_size=(size, size), channels=channels, kernel=3, stride=stride,
                                       padding=1))
        size //= stride
        layers.append(mapper.conv2d(f"pw{i}", input_size=(size, size), in_channels=channels, out_channels=width,
                                    kernel=1))
        channels = width
    layers.append(mapper.pool("avgpool", input_size=(size, size), channels=channels, kernel=size))
    layers.append(mapper.dense("fc", in_features=channels, out_features=1000))
    return mapper.layer_graph(layers, name="mobilenet_v1")

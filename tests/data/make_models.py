"""Generate the small int8 TFLite test models in this folder (dev-only; needs TensorFlow).

    python3 -m pip install tensorflow-cpu      # or tensorflow; never a runtime dependency
    python3 tests/data/make_models.py          # writes tests/data/*.tflite
    python3 tests/data/make_models.py --only conv1d se_mul --out /tmp/models

Every model gets random weights (Keras initialisers, seeded; batch-norm statistics set from the
calibration data so that deep networks keep their activations) and full-integer post-training
quantization (int8 inputs, outputs and activations) calibrated on a seeded representative dataset
of normal noise, so activations use their int8 range. The one-pattern models each exercise one op
or pattern the TFLite converter emits (ZeroPadding2D -> PAD, Conv1D -> RESHAPE + CONV_2D, dilated
convs, Resizing -> RESIZE_NEAREST_NEIGHBOR, Conv2DTranspose -> TRANSPOSE_CONV, ...; TF 2.21 folds a
dilated conv's SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND and a stride-2 ZeroPadding2D into the CONV_2D).
Keras UpSampling2D (RESHAPE + TILE) gets its TILE opcode version lowered from 3 to 2 so that
LiteRT's reference resolver loads it. ``mobilenet_v2`` and ``mobilenet_v3s`` are small variants of
``keras.applications`` (``weights=None``, 10 classes, logits out: a random-weight softmax input
can get a scale small enough to abort LiteRT). ``dyn_flatten`` is converted with a dynamic batch
(a SHAPE/STRIDED_SLICE/PACK chain before its RESHAPE). ``softmax_tiny_scale`` has a softmax input
scale of ~1e-8 (LiteRT's reference softmax aborts on it).
"""

from __future__ import annotations

import argparse
import os
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _keras():
    import keras  # noqa: PLC0415 - TensorFlow is a dev-only dependency
    return keras


def _conv(x, filters=16, kernel=3, **kw):
    keras = _keras()
    return keras.layers.Conv2D(filters, kernel, padding=kw.pop("padding", "same"), **kw)(x)


def _model(shape, body: Callable) -> "object":
    keras = _keras()
    inp = keras.Input(shape=shape, batch_size=1)
    return keras.Model(inp, body(inp))


def pad_conv():
    keras = _keras()
    return _model((12, 12, 8), lambda x: keras.layers.ReLU()(
        _conv(keras.layers.ZeroPadding2D(((1, 2), (0, 1)))(x), padding="valid")))


def pad_stride2():
    keras = _keras()
    return _model((16, 16, 8), lambda x: _conv(keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(x), padding="valid", strides=2))


def conv1d():
    keras = _keras()
    return _model((32, 8), lambda x: keras.layers.Conv1D(16, 3, padding="same", activation="relu")(x))


def space_to_batch():
    """SPACE_TO_BATCH_ND -> conv -> tanh -> BATCH_TO_SPACE_ND: the tanh keeps the converter from folding
    the pair into a dilated CONV_2D."""
    import tensorflow as tf  # noqa: PLC0415
    keras = _keras()

    def body(x):
        y = keras.layers.Lambda(lambda t: tf.space_to_batch_nd(t, [2, 2], [[2, 2], [2, 2]]))(x)
        y = keras.layers.Activation("tanh")(_conv(y, 8, padding="valid"))
        return keras.layers.Lambda(lambda t: tf.batch_to_space(t, [2, 2], [[0, 0], [0, 0]]))(y)
    return _model((12, 12, 8), body)


def dilated():
    return _model((16, 16, 8), lambda x: _conv(x, dilation_rate=2, activation="relu"))


def upsample():
    """UpSampling2D: RESHAPE + TILE chains (the TILE opcode version is lowered, see ``tile_version_2``)."""
    keras = _keras()
    return _model((8, 8, 8), lambda x: _conv(keras.layers.UpSampling2D(2)(_conv(x, 8)), 8))


def tile_version_2(data: bytes) -> bytes:
    """The model with its TILE opcodes marked version 2: TF 2.21 writes version 3, which LiteRT 2.x's
    reference resolver does not register, although its TILE kernel runs int8 (the op is unchanged)."""
    import flatbuffers  # noqa: PLC0415
    from ai_edge_litert import schema_py_generated as schema  # noqa: PLC0415

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    for code in model.operatorCodes:
        if code.builtinCode == schema.BuiltinOperator.TILE:
            code.version = min(code.version, 2)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def conv1d_dilated():
    keras = _keras()
    return _model((32, 8), lambda x: keras.layers.Conv1D(16, 3, dilation_rate=2, padding="same")(x))


def resize_nearest():
    keras = _keras()
    return _model((8, 8, 8), lambda x: _conv(keras.layers.Resizing(12, 12, interpolation="nearest")(_conv(x, 8)), 8))


def transpose_conv():
    keras = _keras()
    return _model((8, 8, 8), lambda x: keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same")(x))


def concat():
    keras = _keras()
    return _model((12, 12, 8), lambda x: _conv(keras.layers.Concatenate()([_conv(x, 8), _conv(x, 4, 1)]), 8))


def leaky_relu():
    keras = _keras()
    return _model((12, 12, 8), lambda x: keras.layers.LeakyReLU(negative_slope=0.2)(_conv(x)))


def gap_mean():
    keras = _keras()
    return _model((12, 12, 8), lambda x: keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(_conv(x))))


def se_mul():
    keras = _keras()

    def body(x):
        y = _conv(x, 16, activation="relu")
        s = keras.layers.GlobalAveragePooling2D(keepdims=True)(y)
        s = keras.layers.Conv2D(4, 1, activation="relu")(s)
        s = keras.layers.Conv2D(16, 1, activation="sigmoid")(s)
        return keras.layers.Multiply()([y, s])
    return _model((12, 12, 8), body)


def add_broadcast():
    """ADD with broadcasting (a per-channel mean added back) and ADD/MUL with constants (Rescaling)."""
    keras = _keras()

    def body(x):
        y = _conv(x, 16)
        y = keras.layers.Add()([y, keras.layers.GlobalAveragePooling2D(keepdims=True)(y)])
        return keras.layers.Rescaling(0.5, offset=0.25)(y)
    return _model((12, 12, 8), body)


def hard_swish():
    keras = _keras()
    return _model((12, 12, 8), lambda x: keras.layers.Activation("hard_swish")(_conv(x)))


def sigmoid():
    keras = _keras()
    return _model((12, 12, 8), lambda x: keras.layers.Activation("sigmoid")(_conv(x)))


def tanh():
    keras = _keras()
    return _model((12, 12, 8), lambda x: keras.layers.Activation("tanh")(_conv(x)))


def grouped():
    return _model((12, 12, 16), lambda x: _conv(x, 16, groups=4, activation="relu"))


def dense_rank3():
    keras = _keras()
    return _model((8, 16), lambda x: keras.layers.Dense(12, activation="relu")(x))


def softmax():
    keras = _keras()
    return _model((32,), lambda x: keras.layers.Softmax()(keras.layers.Dense(10)(x)))


def softmax_tiny_scale():
    keras = _keras()
    dense = keras.layers.Dense(10, kernel_initializer=keras.initializers.RandomNormal(stddev=1e-9),
                               bias_initializer="zeros")
    return _model((32,), lambda x: keras.layers.Softmax()(dense(x)))


def dyn_flatten():
    keras = _keras()
    inp = keras.Input(shape=(8, 8, 4))  # batch None: the converter emits SHAPE chains for Flatten
    y = keras.layers.Dense(10)(keras.layers.Flatten()(_conv(inp, 8, strides=2, activation="relu")))
    return keras.Model(inp, y)


def mobilenet_v2():
    keras = _keras()
    return keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10,
                                          classifier_activation=None)


def mobilenet_v3s():
    keras = _keras()
    return keras.applications.MobileNetV3Small(input_shape=(64, 64, 3), alpha=0.75, minimalistic=False, weights=None,
                                               classes=10, include_preprocessing=False,
                                               classifier_activation=None)


def mobilenet_v1():
    keras = _keras()
    return keras.applications.MobileNet(input_shape=(64, 64, 3), alpha=0.25, weights=None, classes=10)


def mobilenet_v3l():
    keras = _keras()
    return keras.applications.MobileNetV3Large(input_shape=(64, 64, 3), alpha=0.75, weights=None, classes=10)


def efficientnet_b0():
    keras = _keras()
    return keras.applications.EfficientNetB0(input_shape=(64, 64, 3), weights=None, classes=10)


def resnet50():
    keras = _keras()
    return keras.applications.ResNet50(input_shape=(64, 64, 3), weights=None, classes=10)


#: larger keras.applications variants (0.3-24 MB): generated only when named with --only, not committed
EXTRA: dict[str, Callable] = {f.__name__: f for f in (mobilenet_v1, mobilenet_v3l, efficientnet_b0, resnet50)}

MODELS: dict[str, Callable] = {f.__name__: f for f in (
    pad_conv, pad_stride2, conv1d, conv1d_dilated, dilated, space_to_batch, upsample, resize_nearest, transpose_conv, concat, leaky_relu,
    gap_mean, se_mul, add_broadcast, hard_swish, sigmoid, tanh, grouped, dense_rank3, softmax, softmax_tiny_scale,
    dyn_flatten, mobilenet_v2, mobilenet_v3s)}


def normalise_batchnorms(model, data: np.ndarray) -> None:
    """Set every BatchNormalization's moving mean/variance to its input's statistics on ``data`` (in
    network order), so that a deep random-weight network keeps unit-scale activations instead of
    vanishing ones (which quantize to scales of ~1e-8)."""
    keras = _keras()
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            x = np.asarray(keras.Model(model.inputs, layer.input)(data, training=False))
            axes = tuple(range(x.ndim - 1))
            layer.moving_mean.assign(x.mean(axis=axes))
            layer.moving_variance.assign(x.var(axis=axes))


def convert(model, seed: int, samples: int = 32) -> bytes:
    """Full-integer (int8 in/out) TFLite flatbuffer of a Keras model, calibrated on normal noise."""
    import tensorflow as tf  # noqa: PLC0415

    shape = [1 if d is None else int(d) for d in model.inputs[0].shape]
    rng = np.random.default_rng(seed)
    data = [rng.normal(0.0, 1.0, size=shape).astype(np.float32) for _ in range(samples)]
    normalise_batchnorms(model, np.concatenate(data[:8]))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([d] for d in data)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    parser.add_argument("--only", nargs="+", choices=sorted(MODELS) + sorted(EXTRA),
                        help=f"models to generate (default: all but {', '.join(EXTRA)})")
    args = parser.parse_args()
    keras = _keras()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in [*MODELS, *EXTRA]:
        if (args.only and name not in args.only) or (not args.only and name in EXTRA):
            continue
        seed = zlib.crc32(name.encode()) % (1 << 16)  # per model: adding a model changes no other one
        keras.backend.clear_session()  # tensor/layer names restart: same bytes with or without --only
        keras.utils.set_random_seed(seed)
        data = convert({**MODELS, **EXTRA}[name](), seed)
        if name == "upsample":
            data = tile_version_2(data)
        (args.out / f"{name}.tflite").write_bytes(data)
        print(f"{name}.tflite: {len(data)} bytes")


if __name__ == "__main__":
    main()

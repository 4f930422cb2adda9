"""Small and standard models with BatchNorm, built in code (no downloads), for demos, tests and benchmarks.

Every builder returns a fresh model whose numbers all come from a seed: the kernels are
drawn again from a seeded generator (Keras' own initializers are not seeded) and the BN
statistics are randomized, so that folding is not the identity map and a demo shows the
same numbers every time, in every process.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from fold.core.verification import SAMPLES


def randomize_bn(model: keras.Model, seed: int = 0, var_range: tuple[float, float] = (0.3, 3.0)) -> keras.Model:
    """Give every BatchNormalization (nested ones too) random, non-trivial statistics."""
    rng = np.random.default_rng(seed)
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 1, n).astype(layer.moving_mean.dtype))
            layer.moving_variance.assign(rng.uniform(*var_range, n).astype(layer.moving_variance.dtype))
            if layer.scale:
                layer.gamma.assign(rng.normal(1, 0.5, n).astype(layer.gamma.dtype))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.5, n).astype(layer.beta.dtype))
    return model


def seeded_kernels(model: keras.Model, seed: int = 0) -> keras.Model:
    """Draw every trainable kernel (rank >= 2, nested models too) again, Glorot-uniform from ``seed``.

    Biases, BN variables and non-trainable state (a Normalization layer's statistics) keep
    their deterministic initial values.
    """
    rng = np.random.default_rng(seed)
    for weight in model.trainable_weights:
        shape = tuple(weight.shape)
        if len(shape) < 2:
            continue
        receptive = int(np.prod(shape[:-2]))
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weight.assign(rng.uniform(-limit, limit, shape).astype(weight.dtype))
    return model


def all_layers(model: keras.Model):
    """Every layer, nested models' layers included (depth first)."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def dcgan_generator(latent: int = 32, base: int = 64, seed: int = 0) -> keras.Model:
    """DCGAN-style generator: Dense -> BN -> LeakyReLU, then Conv2DTranspose(stride 2) -> BN -> LeakyReLU."""
    layers = keras.layers
    z = keras.Input((latent,), name="z")
    x = layers.Dense(4 * 4 * base * 2, use_bias=False, name="project")(z)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.LeakyReLU(0.2, name="project_act")(x)
    x = layers.Reshape((4, 4, base * 2), name="reshape")(x)
    for i, filters in enumerate((base, base // 2)):
        x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False, name=f"up{i}")(x)
        x = layers.BatchNormalization(name=f"up{i}_bn")(x)
        x = layers.LeakyReLU(0.2, name=f"up{i}_act")(x)
    out = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh", name="to_rgb")(x)
    return randomize_bn(seeded_kernels(keras.Model(z, out, name="dcgan_generator"), seed), seed)


def unet(size: int = 32, base: int = 8, depth: int = 2, seed: int = 0) -> keras.Model:
    """A small U-Net: Conv -> BN -> ReLU blocks, max-pool down, Conv2DTranspose up, skip concatenations."""
    layers = keras.layers

    def block(x, filters, name):
        for j in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=j == 1, name=f"{name}_conv{j}")(x)
            x = layers.BatchNormalization(name=f"{name}_bn{j}")(x)
            x = layers.ReLU(name=f"{name}_relu{j}")(x)
        return x

    inp = keras.Input((size, size, 3), name="image")
    skips, x = [], inp
    for d in range(depth):
        x = block(x, base * 2**d, f"down{d}")
        skips.append(x)
        x = layers.MaxPooling2D(name=f"pool{d}")(x)
    x = block(x, base * 2**depth, "bottom")
    for d in reversed(range(depth)):
        x = layers.Conv2DTranspose(base * 2**d, 2, strides=2, name=f"up{d}_tconv")(x)
        x = layers.BatchNormalization(name=f"up{d}_tbn")(x)
        x = layers.Concatenate(name=f"up{d}_concat")([x, skips[d]])
        x = block(x, base * 2**d, f"up{d}")
    out = layers.Conv2D(2, 1, name="logits")(x)
    return randomize_bn(seeded_kernels(keras.Model(inp, out, name="unet"), seed), seed)


def application(name: str, input_size: int = 224, seed: int = 0) -> keras.Model:
    """A ``keras.applications`` architecture with ``weights=None`` and randomized BN statistics."""
    builder: Callable[..., keras.Model] = getattr(keras.applications, name)
    model = builder(weights=None, input_shape=(input_size, input_size, 3))
    return randomize_bn(seeded_kernels(model, seed), seed)


#: The page verifies a zoo model on as many samples as the command line does by default
#: (``fold.core.verification.SAMPLES``), but on the 224x224 architectures, where 8 samples of every layer's output take a
#: gigabyte and half a minute: 2 (a channel that varies over 2 samples is exercised).
LARGE_SAMPLES = 2
#: ...which the page says beside its verdict.
LARGE_SAMPLES_REASON = (f"on a 224x224 architecture every layer's output over {SAMPLES} samples takes a gigabyte and "
                        f"half a minute, so the page checks {LARGE_SAMPLES} (a channel that varies over "
                        f"{LARGE_SAMPLES} samples is exercised)")


@dataclass(frozen=True)
class ZooEntry:
    """A model of the zoo: its format (a key of ``fold.frontends.formats.FRONTENDS``), a builder that
    returns that frontend's model object, and how many samples the page verifies it on (None:
    the command line's default)."""

    format: str
    build: Callable[[], object]
    samples: int | None = None

    @property
    def applications(self) -> bool:
        """A keras.applications architecture (built with ``weights=None``)."""
        return self.format == "keras" and self.samples is not None

    @property
    def large(self) -> bool:
        """A 224x224 architecture (verified on ``LARGE_SAMPLES``): seconds to verify, and a gigabyte
        while it runs."""
        return self.samples is not None


def _onnx(name: str) -> Callable[[], object]:
    def build():
        from fold.frontends.onnx.io import prepare
        from foldscope_app.examples import onnx_zoo

        return prepare(getattr(onnx_zoo, name)(), f"{name}.onnx")
    return build


def _seed_two_bns():
    from foldscope_app.examples.seed import two_bn_model

    return two_bn_model()


#: Names shown in the app's model zoo -> entry.
ZOO: dict[str, ZooEntry] = {
    "DCGAN generator": ZooEntry("keras", dcgan_generator),
    "U-Net (skip connections)": ZooEntry("keras", unet),
    "MobileNetV2": ZooEntry("keras", lambda: application("MobileNetV2"), LARGE_SAMPLES),
    "ResNet50": ZooEntry("keras", lambda: application("ResNet50"), LARGE_SAMPLES),
    "DenseNet121": ZooEntry("keras", lambda: application("DenseNet121"), LARGE_SAMPLES),
    "ONNX: DCGAN generator (grouped ConvTranspose)": ZooEntry("onnx", _onnx("dcgan_generator")),
    "ONNX: text detector head (paddle2onnx's ConvTranspose -> Add -> BN)": ZooEntry("onnx", _onnx("text_detector_head")),
    "ONNX: ResNet-50": ZooEntry("onnx", _onnx("resnet50"), LARGE_SAMPLES),
    "Seed TConv with both of the note's BNs (2 channels)": ZooEntry("keras", _seed_two_bns),
}


def caption(entry: ZooEntry) -> str:
    """How a zoo entry was made, in one sentence (under the page's zoo picker)."""
    if entry.format == "onnx":
        return "An ONNX model built with onnx.helper: every weight and BN statistic drawn from seed 0."
    if entry.applications:
        return "A keras.applications architecture built with weights=None, its BN statistics random, all from seed 0."
    return "A Keras model built in code, its kernels and BN statistics drawn from seed 0."


PLAYGROUND_KINDS = ("Conv2D", "DepthwiseConv2D", "Conv2DTranspose", "SeparableConv2D", "Dense")


class Activation(str, enum.Enum):
    """Where the playground puts a ReLU; the value is the label the page shows."""

    NONE = "none"
    AFTER_BN = "ReLU after BN"
    INSIDE = "ReLU inside the layer (the BN cannot fold into it)"


def playground_model(
    kind: str = "Conv2DTranspose",
    channels_in: int = 3,
    channels_out: int = 4,
    kernel_size: int = 3,
    stride: int = 2,
    padding: str = "same",
    dilation: int = 1,
    output_padding: int | None = None,
    use_bias: bool = True,
    activation: Activation | str = Activation.NONE,
    epsilon: float = 1e-3,
    spread: float = 1.0,
    tiny_variance: bool = False,
    size: int = 8,
    seed: int = 0,
    next_layer: bool = False,
) -> keras.Model:
    """One layer + BatchNorm (+ optional activation) from the playground's widgets.

    ``spread`` scales how far the BN statistics are from the identity; ``tiny_variance``
    sets channel 0's variance to 1e-10 (the case that blows up a folded kernel's range);
    ``next_layer`` adds a 1x1 Conv2D after them, the second layer cross-layer equalization
    needs to even out the folded kernel's ranges.
    """
    if kind not in PLAYGROUND_KINDS:
        raise ValueError(f"Invalid value for argument `kind`: expected one of {PLAYGROUND_KINDS}. Received: kind={kind}")
    activation = Activation(activation)
    inner = "relu" if activation is Activation.INSIDE else None
    layers = keras.layers
    common = dict(padding=padding, use_bias=use_bias, activation=inner, name="layer")
    if kind == "Conv2D":
        layer = layers.Conv2D(channels_out, kernel_size, strides=stride, dilation_rate=dilation, **common)
    elif kind == "Conv2DTranspose":
        layer = layers.Conv2DTranspose(channels_out, kernel_size, strides=stride, dilation_rate=dilation,
                                       output_padding=output_padding, **common)
    elif kind == "DepthwiseConv2D":
        multiplier = max(1, channels_out // channels_in)
        layer = layers.DepthwiseConv2D(kernel_size, strides=stride, dilation_rate=dilation,
                                       depth_multiplier=multiplier, **common)
    elif kind == "SeparableConv2D":
        layer = layers.SeparableConv2D(channels_out, kernel_size, strides=stride, dilation_rate=dilation, **common)
    else:
        layer = layers.Dense(channels_out, use_bias=use_bias, activation=inner, name="layer")
    inp = keras.Input((size, size, channels_in), name="x")
    bn = layers.BatchNormalization(epsilon=epsilon, name="bn")
    out = bn(layer(inp))
    if activation is Activation.AFTER_BN:
        out = layers.ReLU(name="relu")(out)
    if next_layer:
        out = layers.Conv2D(channels_out, 1, name="next")(out)
    model = keras.Model(inp, out, name=f"playground_{kind}")
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if w.path.startswith(("layer/", "next/")):
            w.assign(rng.normal(0, 0.5, w.shape).astype(w.dtype))
    n = bn.moving_mean.shape[0]
    variance = np.exp(rng.normal(0, spread, n))
    if tiny_variance:
        variance[0] = 1e-10
    bn.set_weights([rng.normal(1, 0.5 * spread, n), rng.normal(0, spread, n), rng.normal(0, spread, n), variance])
    return model

"""dlib's face ResNet (``anet_type`` of dnn_face_recognition_ex.cpp) rebuilt in TensorFlow.

The weights come from :mod:`dlib_reader`; the layer order is checked against the
architecture below, so a different network in the ``.dat`` fails loudly. The input is a
raw 150x150 RGB chip (0..255, NHWC float32); dlib's preprocessing (subtract the mean
colour, divide by 256) is the first op of the graph. Output: the 128-D descriptor,
not normalised (exactly what dlib's ``compute_face_descriptor`` returns).
Runs in the build venv only (imports TensorFlow).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dlib_reader import Layer

# Residual levels, input side first: (filters, number of ares blocks, starts with ares_down)
LEVELS = [(32, 3, False), (64, 3, True), (128, 2, True), (256, 2, True), (256, 0, True)]


def expected_kinds() -> list[str]:
    """Layer version strings in file order (input first) for anet_type."""
    kinds = ["input_rgb_image_sized", "con_4", "affine_", "relu_", "max_pool_2"]
    block = ["con_4", "affine_", "relu_", "con_4", "affine_"]
    for _, count, down in LEVELS:
        if down:
            kinds += block + ["avg_pool_2", "add_prev_", "relu_"]
        kinds += (block + ["add_prev_", "relu_"]) * count
    return kinds + ["avg_pool_2", "fc_2", "loss_metric_2"]


class _Weights:
    """Hands out the parsed layers in order, checking each one's kind."""

    def __init__(self, layers: list[Layer]) -> None:
        kinds = [layer.kind for layer in layers]
        if kinds != expected_kinds():
            raise ValueError("the .dat is not dlib's face ResNet v1 (layer sequence differs)")
        self.layers = iter(layers)

    def next(self, kind: str) -> Layer:
        layer = next(self.layers)
        assert layer.kind == kind, (layer.kind, kind)
        return layer


def _conv(x: tf.Tensor, layer: Layer) -> tf.Tensor:
    f = layer.fields
    n_out, n_in, kh, kw = f["filters"]["shape"]
    params = f["params"].reshape(-1)
    kernel = params[: n_out * n_in * kh * kw].reshape(n_out, n_in, kh, kw).transpose(2, 3, 1, 0)
    bias = params[n_out * n_in * kh * kw:][:n_out]
    py, px = f["padding_y"], f["padding_x"]
    if py or px:
        x = tf.pad(x, [[0, 0], [py, py], [px, px], [0, 0]])
    x = tf.nn.conv2d(x, tf.constant(kernel), strides=[1, f["stride_y"], f["stride_x"], 1], padding="VALID")
    return tf.nn.bias_add(x, tf.constant(bias))


def _affine(x: tf.Tensor, layer: Layer) -> tf.Tensor:
    params = layer.fields["params"].reshape(-1)
    channels = layer.fields["gamma"]["shape"][1]
    return x * tf.constant(params[:channels]) + tf.constant(params[channels:2 * channels])


def _pool(x: tf.Tensor, layer: Layer, op) -> tf.Tensor:
    f = layer.fields
    assert f["padding_y"] == 0 and f["padding_x"] == 0, "pool padding not supported"
    window, stride = [1, f["nr"], f["nc"], 1], [1, f["stride_y"], f["stride_x"], 1]
    return op(x, ksize=window, strides=stride, padding="VALID")


def _add_prev(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """dlib's add_prev: the output has the larger size on every axis; the smaller tensor
    is zero-padded at the end (bottom, right, last channels)."""
    sa, sb = a.shape.as_list(), b.shape.as_list()
    target = [max(p, q) for p, q in zip(sa, sb)]

    def pad(t, shape):
        if shape == target:
            return t
        return tf.pad(t, [[0, want - have] for have, want in zip(shape, target)])

    return pad(a, sa) + pad(b, sb)


def _block(x: tf.Tensor, w: _Weights) -> tf.Tensor:
    y = tf.nn.relu(_affine(_conv(x, w.next("con_4")), w.next("affine_")))
    w.next("relu_")
    return _affine(_conv(y, w.next("con_4")), w.next("affine_"))


def _ares(x: tf.Tensor, w: _Weights) -> tf.Tensor:
    y = _block(x, w)
    w.next("add_prev_")
    w.next("relu_")
    return tf.nn.relu(_add_prev(y, x))


def _ares_down(x: tf.Tensor, w: _Weights) -> tf.Tensor:
    y = _block(x, w)
    skip = _pool(x, w.next("avg_pool_2"), tf.nn.avg_pool2d)
    w.next("add_prev_")
    w.next("relu_")
    return tf.nn.relu(_add_prev(skip, y))


def make_forward(layers: list[Layer]):
    """Return ``forward(x)``: [N,150,150,3] raw RGB float32 -> [N,128] descriptors."""
    w = _Weights(layers)
    mean = np.asarray(w.next("input_rgb_image_sized").fields["avg_rgb"], dtype=np.float32)

    def forward(x: tf.Tensor) -> tf.Tensor:
        weights = _Weights(layers)
        weights.next("input_rgb_image_sized")
        y = (x - tf.constant(mean)) * tf.constant(np.float32(1 / 256))
        y = _conv(y, weights.next("con_4"))
        y = tf.nn.relu(_affine(y, weights.next("affine_")))
        weights.next("relu_")
        y = _pool(y, weights.next("max_pool_2"), tf.nn.max_pool2d)
        for _, count, down in LEVELS:
            if down:
                y = _ares_down(y, weights)
            for _ in range(count):
                y = _ares(y, weights)
        pool = weights.next("avg_pool_2")
        assert pool.fields["nr"] == 0, "expected avg_pool_everything"
        y = tf.reduce_mean(y, axis=[1, 2])
        fc = weights.next("fc_2").fields
        kernel = fc["params"].reshape(fc["num_inputs"], fc["num_outputs"])
        return tf.matmul(y, tf.constant(kernel))

    return forward

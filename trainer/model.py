"""A small decoder-only Transformer language model in Keras 3 (TensorFlow or JAX backend).

Inputs are the input pipeline's features: ``tokens``, ``segment_ids`` (0 on
padding) and ``positions`` (restarting at 0 in each packed segment). A token
attends to earlier tokens of its own segment only, so packed documents never
see each other. Pre-norm blocks (LayerNorm, multi-head self-attention,
LayerNorm, GELU MLP), learned token and position embeddings, a final
LayerNorm and a float32 output projection (so mixed precision keeps a float32
softmax).

**Attention** (:class:`CausalSelfAttention`) goes through
``keras.ops.dot_product_attention``, which each backend maps to its best
kernel (under JAX on an Ampere-or-later GPU: cuDNN's fused flash attention;
under XLA elsewhere: one fused computation). Two forms, chosen by
``ModelConfig.packed``:

* one document per row (``bucket``, ``pad`` and ``tf_bucket`` batching, rows
  padded on the right): ``is_causal=True`` and no mask at all. A real token
  only sees earlier positions, and padding only ever follows the real tokens,
  so no real token can see padding; what padding positions compute carries
  no weight in the loss. This is the form flash kernels take.
* packed rows (``pack`` batching): causal plus "same segment", the segment
  test written as a broadcast comparison of the ``[B, T]`` segment ids inside
  the attention call (``[B, 1, T, 1] == [B, 1, 1, T]``). No ``[B, T, T]``
  tensor is a layer's output or input any more (the old
  :class:`SegmentCausalMask` layer built one in memory for every batch);
  under XLA (``--jit_compile``) the comparison is fused into the masked
  softmax. Fused flash kernels do not take segment ids through
  ``keras.ops``: the packed form runs the backend's XLA attention.

Attention-probability dropout is not offered by ``dot_product_attention``:
``dropout`` applies to the attention output, the MLP output and the
embeddings.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import layers, ops

__all__ = ["ModelConfig", "CausalSelfAttention", "ImageNormalization", "SegmentCausalMask", "build_model", "TokenCount",
           "MaskedNLL"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    seq_len: int = 512
    layers: int = 4
    width: int = 256
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    packed: bool = False  # rows hold several segments (pack batching): mask by segment too

    def __post_init__(self):
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        for name in ("vocab_size", "seq_len", "layers", "width", "heads", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@keras.saving.register_keras_serializable(package="beamtrain")
class CausalSelfAttention(layers.Layer):
    """Multi-head causal self-attention through ``keras.ops.dot_product_attention``.

    ``call(x, segment_ids)``: with ``packed`` a position attends to earlier
    positions of its own segment (segment ids compared by broadcasting, no
    ``[B, T, T]`` input); without, to every earlier position (rows hold one
    document, padded on the right), the mask-free form fused kernels take.
    One projection makes queries, keys and values.
    """

    def __init__(self, heads: int, head_dim: int, packed: bool = False, dropout: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.heads, self.head_dim, self.packed, self.dropout = heads, head_dim, packed, dropout
        width = heads * head_dim
        self.qkv = layers.EinsumDense("btd,dce->btce", output_shape=(None, 3, width),
                                      bias_axes="ce", name="qkv")
        self.out = layers.EinsumDense("btnh,nhd->btd", output_shape=(None, width),
                                      bias_axes="d", name="out")
        self.drop = layers.Dropout(dropout)

    def build(self, x_shape, segment_ids_shape=None):
        self.qkv.build(x_shape)
        self.out.build((x_shape[0], x_shape[1], self.heads, self.head_dim))
        self.built = True

    def call(self, x, segment_ids=None, training=None):
        qkv = self.qkv(x)  # [B, T, 3, W]
        shape = ops.shape(x)
        split = (shape[0], shape[1], self.heads, self.head_dim)
        q, k, v = (ops.reshape(qkv[:, :, i], split) for i in range(3))
        mask = None
        if self.packed and segment_ids is not None:
            seg = ops.expand_dims(segment_ids, 1)  # [B, 1, T]
            mask = ops.equal(ops.expand_dims(seg, 3), ops.expand_dims(seg, 2))  # [B, 1, T, T]
        h = ops.dot_product_attention(q, k, v, mask=mask, is_causal=True)
        return self.drop(self.out(h), training=training)

    def compute_output_shape(self, x_shape, segment_ids_shape=None):
        return x_shape

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "head_dim": self.head_dim,
                "packed": self.packed, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="beamtrain")
class ImageNormalization(layers.Layer):
    """uint8 pixels -> ImageNet-normalised floats, on the device.

    The image input pipeline sends uint8 (a quarter of float32's bytes across
    the bus to the accelerator); the cast, the scaling to [0, 1] and the
    ImageNet mean and std run here, in the compiled step. Float input passes
    through unchanged (it was normalised on the host).
    """

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def call(self, images):
        if "int" not in str(images.dtype):
            return ops.cast(images, self.compute_dtype)
        x = ops.cast(images, "float32") / 255.0
        x = (x - ops.array(self.MEAN, "float32")) / ops.array(self.STD, "float32")
        return ops.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="beamtrain")
class SegmentCausalMask(layers.Layer):
    """[B, T] segment ids -> [B, T, T] boolean mask: same segment and not in the future.

    Kept so models saved before :class:`CausalSelfAttention` still load; new
    models do not use it (it holds a ``[B, T, T]`` tensor in memory).
    """

    def call(self, segment_ids):
        t = ops.shape(segment_ids)[1]
        idx = ops.arange(t)
        causal = ops.expand_dims(idx, 0) <= ops.expand_dims(idx, 1)  # [T(query), T(key)]
        same = ops.equal(ops.expand_dims(segment_ids, 2), ops.expand_dims(segment_ids, 1))
        real_key = ops.expand_dims(segment_ids > 0, 1)
        diagonal = ops.expand_dims(ops.eye(t, dtype="bool"), 0)
        return ops.logical_or(ops.logical_and(ops.logical_and(same, real_key),
                                              ops.expand_dims(causal, 0)), diagonal)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[1])


def build_model(config: ModelConfig) -> keras.Model:
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
    positions = keras.Input(shape=(None,), dtype="int32", name="positions")

    x = layers.Embedding(config.vocab_size, config.width, name="token_embedding")(tokens)
    x = x + layers.Embedding(config.seq_len, config.width, name="position_embedding")(positions)
    x = layers.Dropout(config.dropout)(x)
    for i in range(config.layers):
        h = layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_ln1")(x)
        h = CausalSelfAttention(config.heads, config.width // config.heads, packed=config.packed,
                                dropout=config.dropout, name=f"block{i}_attention")(h, segment_ids)
        x = x + h
        h = layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_ln2")(x)
        h = layers.Dense(config.width * config.mlp_ratio, activation="gelu", name=f"block{i}_mlp_in")(h)
        h = layers.Dense(config.width, name=f"block{i}_mlp_out")(h)
        x = x + layers.Dropout(config.dropout)(h)
    x = layers.LayerNormalization(epsilon=1e-5, name="final_ln")(x)
    logits = layers.Dense(config.vocab_size, dtype="float32", name="logits")(x)
    return keras.Model({"tokens": tokens, "segment_ids": segment_ids, "positions": positions},
                       logits, name="decoder_lm")


@keras.saving.register_keras_serializable(package="beamtrain")
class TokenCount(keras.metrics.Metric):
    """Sum of the target weights: the real tokens trained on."""

    def __init__(self, name="tokens", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        weight = ops.ones_like(y_true, dtype="float64") if sample_weight is None else sample_weight
        self.total.assign_add(ops.cast(ops.sum(weight), "float64"))

    def result(self):
        return ops.convert_to_tensor(self.total)  # a tensor, not the variable (JAX traces it)

    def reset_state(self):
        self.total.assign(0.0)


@keras.saving.register_keras_serializable(package="beamtrain")
class MaskedNLL(keras.metrics.Metric):
    """Token-weighted mean negative log-likelihood; exp() of it is the perplexity."""

    def __init__(self, name="nll", **kwargs):
        super().__init__(name=name, **kwargs)
        self.loss_sum = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="loss_sum")
        self.weight_sum = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="weight_sum")

    def update_state(self, y_true, y_pred, sample_weight=None):
        nll = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        weight = ops.ones_like(nll) if sample_weight is None else ops.cast(sample_weight, nll.dtype)
        self.loss_sum.assign_add(ops.cast(ops.sum(nll * weight), "float64"))
        self.weight_sum.assign_add(ops.cast(ops.sum(weight), "float64"))

    def result(self):
        return self.loss_sum / ops.maximum(self.weight_sum, 1.0)

    def reset_state(self):
        self.loss_sum.assign(0.0)
        self.weight_sum.assign(0.0)

"""A small decoder-only Transformer language model in Keras 3 (TensorFlow backend).

Inputs are the input pipeline's features: ``tokens``, ``segment_ids`` (0 on
padding) and ``positions`` (restarting at 0 in each packed segment). A token
attends to earlier tokens of its own segment only (:class:`SegmentCausalMask`),
so packed documents never see each other. Pre-norm blocks (LayerNorm,
multi-head self-attention, LayerNorm, GELU MLP), learned token and position
embeddings, a final LayerNorm and a float32 output projection (so mixed
precision keeps a float32 softmax).
"""

from __future__ import annotations

import dataclasses

import keras
from keras import layers, ops

__all__ = ["ModelConfig", "SegmentCausalMask", "build_model", "TokenCount", "MaskedNLL"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    seq_len: int = 512
    layers: int = 4
    width: int = 256
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0

    def __post_init__(self):
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        for name in ("vocab_size", "seq_len", "layers", "width", "heads", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@keras.saving.register_keras_serializable(package="beamtrain")
class SegmentCausalMask(layers.Layer):
    """[B, T] segment ids -> [B, T, T] boolean mask: same segment and not in the future.

    Every position may attend to itself, so rows of padding (segment 0) stay
    well defined; their targets carry no weight.
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
    mask = SegmentCausalMask(name="segment_causal_mask")(segment_ids)
    for i in range(config.layers):
        h = layers.LayerNormalization(epsilon=1e-5, name=f"block{i}_ln1")(x)
        h = layers.MultiHeadAttention(
            config.heads, config.width // config.heads, dropout=config.dropout,
            name=f"block{i}_attention")(h, h, attention_mask=mask)
        x = x + layers.Dropout(config.dropout)(h)
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
        return self.total

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

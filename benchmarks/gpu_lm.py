"""Training speed of the trainer's language model on one accelerator, under Keras's JAX backend.

    KERAS_BACKEND=jax python -m benchmarks.gpu_lm [--shapes demo,gpt2_small] [--steps 40]
        [--attention both|causal|packed] [--precision mixed_bfloat16] [--peak_tflops 989]

The GPU machine this project is lent has JAX but no TensorFlow, so the
trainer's own model (:func:`trainer.model.build_model`, the same Keras code
the trainer compiles) is timed under the JAX backend, on synthetic batches
placed on the device once: what is measured is the compiled train step
(forward, backward, AdamW with clipping), not the input. The step is Keras's
stateless API under ``jax.jit`` (the pattern Keras documents for custom JAX
loops), with the buffers donated.

For each shape and attention form (``causal``: one document per row, the
mask-free form fused kernels take; ``packed``: rows of several segments,
compared in place) it prints tokens/s, step time and model FLOP utilisation:
6 x parameters (without the embeddings' lookups) + 6 x layers x seq x width
(the causal attention's two matmuls, half of the square) FLOPs per token,
forward and backward, over ``--peak_tflops`` (989: an H100/H200's dense bf16).
The shapes are those the GPU issue named: ``demo`` (4 layers, width 256, seq
512, batch 64, vocabulary 8000) and ``gpt2_small`` (12 layers, width 768, seq
1024, batch 32, vocabulary 32000); ``tiny`` runs on a CPU in seconds.

On the lent H200 machine (JAX, no Keras): ``make gpu-wheels`` here, then run
there, carrying ``.whl``::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
    PYTHONPATH=/tmp/site:. KERAS_BACKEND=jax python3 -m benchmarks.gpu_lm
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

SHAPES = {
    "tiny": dict(layers=2, width=64, heads=2, seq_len=64, batch=8, vocab=500),
    "demo": dict(layers=4, width=256, heads=4, seq_len=512, batch=64, vocab=8000),
    "gpt2_small": dict(layers=12, width=768, heads=12, seq_len=1024, batch=32, vocab=32000),
}


def flops_per_token(model, shape) -> float:
    """6 N (N: parameters outside the embedding tables) + 6 L T d (causal attention)."""
    import math

    embed = sum(math.prod(w.shape) for layer in model.layers
                if layer.name in ("token_embedding", "position_embedding") for w in layer.weights)
    dense = model.count_params() - embed
    return 6.0 * dense + 6.0 * shape["layers"] * shape["seq_len"] * shape["width"]


def synthetic_batch(shape, packed: bool, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    b, t = shape["batch"], shape["seq_len"]
    tokens = rng.integers(4, shape["vocab"], size=(b, t + 1), dtype=np.int32)
    if packed:  # four documents per row, positions restarting in each
        seg = np.repeat(np.arange(1, 5, dtype=np.int32), -(-(t + 1) // 4))[: t + 1]
        segments = np.broadcast_to(seg, (b, t + 1)).copy()
        starts = np.r_[0, np.flatnonzero(np.diff(seg)) + 1]
        pos = np.arange(t + 1) - starts[np.searchsorted(starts, np.arange(t + 1), "right") - 1]
        positions = np.broadcast_to(pos.astype(np.int32), (b, t + 1)).copy()
    else:
        segments = np.ones((b, t + 1), np.int32)
        positions = np.broadcast_to(np.arange(t + 1, dtype=np.int32), (b, t + 1)).copy()
    weights = ((segments[:, :-1] == segments[:, 1:]) & (segments[:, 1:] > 0)).astype(np.float32)
    features = {"tokens": tokens[:, :-1], "segment_ids": segments[:, :-1],
                "positions": positions[:, :-1]}
    return features, tokens[:, 1:], weights


def measure(name: str, shape: dict, packed: bool, steps: int, precision: str) -> dict:
    import jax
    import jax.numpy as jnp
    import keras

    from trainer.model import ModelConfig, build_model

    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(vocab_size=shape["vocab"], seq_len=shape["seq_len"],
                                    layers=shape["layers"], width=shape["width"],
                                    heads=shape["heads"], packed=packed))
    optimizer = keras.optimizers.AdamW(3e-4, weight_decay=0.01, clipnorm=1.0)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                         reduction="mean_with_sample_weight")

    def compute_loss(trainable, non_trainable, x, y, w):
        logits, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return loss_fn(y, logits, sample_weight=w), non_trainable

    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

    def train_step(state, x, y, w):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y, w)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, (trainable, non_trainable, opt_vars)

    per_token = flops_per_token(model, shape)
    parameters = model.count_params()
    step = jax.jit(train_step, donate_argnums=0)
    device = jax.devices()[0]
    x, y, w = jax.device_put(synthetic_batch(shape, packed), device)
    state = jax.device_put(([v.value for v in model.trainable_variables],
                            [v.value for v in model.non_trainable_variables],
                            [v.value for v in optimizer.variables]), device)
    t0 = time.perf_counter()
    loss, state = step(state, x, y, w)  # compile
    first_loss = float(loss)
    compile_s = time.perf_counter() - t0
    for _ in range(3):  # warm up
        loss, state = step(state, x, y, w)
    jax.block_until_ready(loss)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss, state = step(state, x, y, w)
    jax.block_until_ready(loss)
    seconds = time.perf_counter() - t0
    tokens = steps * shape["batch"] * shape["seq_len"]
    flops = per_token * tokens
    return {"shape": name, "attention": "packed" if packed else "causal",
            "tokens_per_s": tokens / seconds, "step_ms": 1000.0 * seconds / steps,
            "tflops": flops / seconds / 1e12, "compile_s": compile_s,
            "loss_first": first_loss, "loss_last": float(loss),
            "parameters": parameters, "device": str(device),
            "loss_finite": bool(jnp.isfinite(loss))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="demo,gpt2_small")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--attention", default="both", choices=["both", "causal", "packed"])
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--peak_tflops", type=float, default=989.0,
                        help="the device's dense peak for --precision (H100/H200 bf16: 989)")
    args = parser.parse_args(argv)
    import keras

    if keras.backend.backend() != "jax":
        print("benchmarks.gpu_lm needs KERAS_BACKEND=jax (set before Keras is imported)")
        return 2
    forms = {"both": (False, True), "causal": (False,), "packed": (True,)}[args.attention]
    print(f"# the trainer's LM under Keras {keras.__version__} / JAX, {args.precision}, "
          f"{args.steps} timed steps on synthetic batches on the device")
    for name in args.shapes.split(","):
        for packed in forms:
            r = measure(name, SHAPES[name], packed, args.steps, args.precision)
            print(f"{r['shape']:<11} {r['attention']:<7} {r['tokens_per_s'] / 1e6:8.3f} M tokens/s  "
                  f"{r['step_ms']:8.2f} ms/step  {r['tflops']:7.1f} TFLOP/s  "
                  f"MFU {r['tflops'] / args.peak_tflops:6.1%}  compile {r['compile_s']:.1f} s  "
                  f"loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}  "
                  f"{r['parameters'] / 1e6:.1f} M params  {r['device']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

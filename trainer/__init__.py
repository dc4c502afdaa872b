"""The tf.data trainer that reads beamtrain's shards (input pipeline, model, train loop)."""

"""Side-by-side speed and memory measurements of keras-gated against Keras's built-in
layers, PyTorch (when installed) and onnxruntime. Not tests: nothing here asserts a timing.

    .venv/bin/python -m benchmarks.run [--quick] [--out BENCHMARKS.md]

Modules, one concept each:
- the command and its report: `run` (the command), `report` (BENCHMARKS.md), `timing`
  (interleaved rounds and statistics), `machine` (CPU, versions, load, memory bandwidth);
- what `run` measures: `training` (one training step of each system, PyTorch's included),
  `backend_training` (the same step on the JAX backend, in a subprocess), `inference`
  (Keras, Keras's own ONNX export and ours, fp32 and int8), `memory` (peak resident memory,
  one subprocess per measurement);
- commands of their own, each a BENCHMARKS.md section: `user_models` (a user's own models,
  ours against the built-ins), `backend_table` (a tagger on every backend, with `floors`:
  the same model in each backend's own library), `time_series_bound` (the time-series row
  against loops written in TensorFlow), `export_scoring` (masked reviews through the
  export), `ort_profile` (onnxruntime's per-node profile), `recurrent_gemms` (the matmul
  floor of a recurrence), `allreduce` (gradient all-reduce between two local workers),
  `serving` (threads and sessions sharing one exported model under a mixed call load),
  `cell_steps` (the step time of each row of RESULTS.md's one-budget table, side by side).
"""

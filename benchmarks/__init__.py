"""Side-by-side speed and memory measurements of keras-gated against Keras's built-in
layers, PyTorch (when installed) and onnxruntime. Not tests: nothing here asserts a timing.

    .venv/bin/python -m benchmarks.run [--quick] [--out BENCHMARKS.md]

Modules, one concept each: `machine` (CPU, versions, memory bandwidth), `training`
(one training step of each system), `backend_training` (the same step on the JAX backend,
in a subprocess),
`inference` (Keras, Keras's own ONNX export and ours, fp32 and int8), `memory` (peak
resident memory, one subprocess per measurement), `timing` (interleaved rounds and
statistics), `report` (BENCHMARKS.md), `run` (the command).
"""

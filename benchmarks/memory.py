"""Peak resident memory, each measurement in its own subprocess so the numbers don't mix.

The parent starts `python -m benchmarks.memory <what> ...`; the child prints its own peak,
`VmHWM` from /proc/self/status, as its last line. Why not `ru_maxrss`: Linux carries a
process's maximum RSS across fork and exec (the child's `ru_maxrss`, from `os.wait4` or
`getrusage(RUSAGE_CHILDREN)`, starts at the parent's peak, so every child of a 1 GiB
benchmark process would report at least 1 GiB), and `RUSAGE_CHILDREN` is moreover the
largest of all children waited for so far. `VmHWM` belongs to the child's own address space,
created at exec. Where /proc is missing, the child's `ru_maxrss` from `os.wait4` is used.
Children:

    baseline --imports tensorflow     what importing the framework alone costs
    train --system ours --cell lstm   build one training system (see `benchmarks.training`)
                                      and run `--repeat` steps
    infer --runtime ours|raw --file X run a scoring call and a generation on an ONNX file with
                                      onnxruntime only (`ours`: OnnxLanguageModel; `raw`: a
                                      plain session, for Keras's own export)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

PEAK_PREFIX = "peak_rss_kib="
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peak_rss_mib(args, threads=None):
    """Runs `python -m benchmarks.memory *args`; returns (peak RSS in MiB, "") or, when the
    child fails, (None, the reason)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    command = [sys.executable, "-m", "benchmarks.memory", *map(str, args)]
    if threads is not None:
        command += ["--threads", str(threads)]
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=errors)
        stdout = child.stdout.read()  # until the child closes it, i.e. exits
        child.stdout.close()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
        errors.seek(0)
        stderr = errors.read()
    if child.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        return None, f"exit {child.returncode}: {tail[0][:200]}"
    for line in reversed(stdout.decode(errors="replace").splitlines()):
        if line.startswith(PEAK_PREFIX):
            return int(line[len(PEAK_PREFIX) :]) / 1024, ""
    return usage.ru_maxrss / 1024, ""  # KiB on Linux


# -- the children -----------------------------------------------------------------------------
def _baseline(options):
    for name in options.imports.split(","):
        __import__(name)


def _train(options):
    from benchmarks.machine import configure_threads
    from benchmarks.training import TrainSetup, build_system

    configure_threads(options.threads)
    setup = TrainSetup(**json.loads(options.setup))
    step = build_system(options.system, setup, options.cell)
    for _ in range(options.repeat):
        step()


def _infer(options):
    import numpy as np

    if options.runtime == "ours":
        from keras_gated.export import OnnxLanguageModel

        lm = OnnxLanguageModel(options.file, providers=["CPUExecutionProvider"])
        run, sizes, vocab = lm.step, lm.state_sizes, lm.vocab_size
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(options.file, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        sizes = [i.shape[-1] for i in session.get_inputs()[1:]]
        vocab = session.get_outputs()[0].shape[-1]
        dtype = np.int32 if session.get_inputs()[0].type == "tensor(int32)" else np.int64

        def run(tokens, states):
            logits, *new = session.run(
                None, {names[0]: tokens.astype(dtype), **dict(zip(names[1:], states))}
            )
            return logits, new

    batch, steps = options.batch, options.steps
    tokens = np.random.default_rng(0).integers(0, vocab, (batch, steps))
    run(tokens, [np.zeros((batch, s), np.float32) for s in sizes])
    states = [np.zeros((1, s), np.float32) for s in sizes]
    token = np.zeros((1, 1), np.int64)
    for _ in range(options.generate):
        logits, states = run(token, states)
        token = logits[:, -1].argmax(-1)[:, None]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("what", choices=("baseline", "train", "infer"))
    parser.add_argument("--imports", default="tensorflow")
    parser.add_argument("--system", default="ours")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--setup", default="{}", help="TrainSetup fields as JSON")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runtime", choices=("ours", "raw"), default="ours")
    parser.add_argument("--file")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--steps", type=int, default=35)
    parser.add_argument("--generate", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    options = parser.parse_args(argv)
    {"baseline": _baseline, "train": _train, "infer": _infer}[options.what](options)
    peak = _own_peak_kib()
    if peak is not None:
        print(f"{PEAK_PREFIX}{peak}", flush=True)


def _own_peak_kib():
    """VmHWM of this process in KiB, or None without /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


if __name__ == "__main__":
    main()

"""What the numbers were measured on: CPU, cores, versions, threads, load, memory bandwidth."""

import importlib
import os
import platform
import time

import numpy as np

PACKAGES = ("numpy", "tensorflow", "keras", "onnx", "onnxruntime", "tf2onnx", "torch")
BUSY_SHARE = 0.05  # a process using more than 5% of one core while sampled counts as busy


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags():
    """The vector extensions the CPU reports, among avx2, avx512f, avx512_vnni, amx_tile."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if x in flags]
    except OSError:
        pass
    return []


def versions():
    """Version of Python, keras_gated and each of `PACKAGES` ("not installed" when absent)."""
    import keras_gated

    out = {"python": platform.python_version(), "keras_gated": keras_gated.__version__}
    for name in PACKAGES:
        try:
            out[name] = importlib.import_module(name).__version__
        except ImportError:
            out[name] = "not installed"
    return out


def configure_threads(threads):
    """Sets TensorFlow's intra-op and inter-op pools and torch's threads to `threads`
    (None leaves every library's default). Call before TensorFlow runs anything."""
    if threads is None:
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def thread_settings():
    """The thread counts in force ("default" where a library picks its own)."""
    import tensorflow as tf

    out = {
        "tensorflow intra-op": tf.config.threading.get_intra_op_parallelism_threads() or "default",
        "tensorflow inter-op": tf.config.threading.get_inter_op_parallelism_threads() or "default",
        "onnxruntime": "default (one per core)",
    }
    try:
        import torch

        out["torch"] = torch.get_num_threads()
    except ImportError:
        pass
    return out


def _cpu_ticks():
    """pid -> (command, utime + stime clock ticks) for every process /proc shows."""
    ticks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks[int(pid)] = (
            command or stat[stat.index("(") + 1 : stat.rindex(")")],
            int(fields[11]) + int(fields[12]),
        )
    return ticks


def busy_processes(seconds=1.0):
    """Other processes using CPU now: [(share of one core, command)], busiest first.

    Samples /proc twice, `seconds` apart; this process is left out. Empty off Linux.
    """
    if not os.path.isdir("/proc"):
        return []
    hz = os.sysconf("SC_CLK_TCK")
    before = _cpu_ticks()
    time.sleep(seconds)
    after = _cpu_ticks()
    busy = []
    for pid, (command, ticks) in after.items():
        if pid == os.getpid() or pid not in before:
            continue
        share = (ticks - before[pid][1]) / hz / seconds
        if share > BUSY_SHARE:
            busy.append((share, command[:100]))
    return sorted(busy, reverse=True)


def load_average():
    try:
        return os.getloadavg()
    except OSError:
        return None


def memory_bandwidth(megabytes=256, repeats=5):
    """Bytes per second of `np.copyto` between two float32 arrays of `megabytes` MiB each.

    Counts the bytes read plus the bytes written (2 x the array) per copy, as STREAM's Copy
    does, and keeps the best of `repeats` copies after one untimed copy (page faults). Arrays
    much larger than the last-level cache make this a memory, not a cache, figure. numpy
    copies on one thread: several cores may pull more, and weights that fit in the cache
    are read faster, so a measured fraction of this bound can exceed 1.
    """
    n = megabytes * 2**20 // 4
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best


def describe(bandwidth_megabytes=256):
    """Everything above, as one dict for the report."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "vector extensions": ", ".join(cpu_flags()) or "none reported",
        "platform": platform.platform(),
        "versions": versions(),
        "threads": thread_settings(),
        "bandwidth": memory_bandwidth(bandwidth_megabytes),
        "bandwidth_megabytes": bandwidth_megabytes,
    }


def free_ports(n):
    """`n` TCP ports on localhost that were free a moment ago (for local worker processes)."""
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports

"""The runtime-only distribution (runtime/): numpy and onnxruntime, no TensorFlow, generates."""

import email
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNTIME_REQUIREMENTS = {"numpy", "onnxruntime"}


def _build_wheel(folder):
    # setuptools packs whatever its build folder holds: files of an earlier build (a module
    # since renamed or removed) would ride along
    shutil.rmtree(ROOT / "runtime" / "build", ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(folder),
            str(ROOT / "runtime"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = folder.glob("keras_gated_runtime-*.whl")
    return wheel


def test_the_runtime_wheel_requires_only_numpy_and_onnxruntime(tmp_path, exported):
    wheel = _build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(meta))
        archive.extractall(tmp_path / "site")
    names = {req.split(">")[0].split("=")[0].strip() for req in metadata.get_all("Requires-Dist")}
    assert names == RUNTIME_REQUIREMENTS
    # The wheel's own files generate with TensorFlow, Keras and onnx unimportable.
    from tests.cli.test_startup import BLOCKED

    # ... and the wheel ships exactly the modules that run imports
    reporting = BLOCKED.replace(
        "sys.exit(main(sys.argv[1:]))",
        "status = main(sys.argv[1:])\n"
        "print(*sorted(m for m in sys.modules if m.startswith('keras_gated')), file=sys.stderr)\n"
        "sys.exit(status)",
    )
    assert reporting != BLOCKED
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            reporting,
            "generate",
            "--onnx",
            str(exported),
            "--prompt",
            "the",
            "--tokens",
            "3",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    imported = set(done.stderr.split("\n")[-2].split())
    shipped = {
        name[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        for name in archive.namelist()
        if name.endswith(".py")
    }
    assert shipped == imported


@pytest.mark.slow
def test_a_fresh_environment_with_the_runtime_only_generates(tmp_path, exported):
    """pip installs runtime/ and its two dependencies (from the configured index) into a new
    virtual environment, which then generates and holds no TensorFlow or Keras."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(ROOT / "runtime")],
        check=True,
        capture_output=True,
        timeout=600,
        cwd=tmp_path,
    )
    done = subprocess.run(
        [
            venv / "bin" / "keras-gated",
            "generate",
            "--onnx",
            str(exported),
            "--prompt",
            "the",
            "--tokens",
            "3",
            "--seed",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and done.stdout.startswith("the"), done.stderr
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.lower()
    assert "tensorflow" not in listed and "keras==" not in listed

"""The benchmark command runs end to end in --quick mode on tiny sizes.

Benchmarks are not tests: nothing here looks at a timing. This only checks that
`python -m benchmarks.run` finishes and writes a report with every section.
"""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = [
    "--quick",
    "--vocab",
    "50",
    "--units",
    "8",
    "--rounds",
    "1",
    "--warmup",
    "1",
    "--cells",
    "lstm",
    "--systems",
    "ours,keras,torch",
    "--memory-systems",
    "ours",
    "--backends",
    "",
    "--train-steps",
    "2",
    "--gen-tokens",
    "5",
    "--threads",
    "1",
    "--bandwidth-mib",
    "64",
]
SECTIONS = (
    "# keras-gated benchmarks",
    "## Machine",
    "## Targets",
    "## Training step",
    "### LSTM — V=50, E=U=8",
    "## Inference",
    "## Peak resident memory",
)


def test_quick_benchmark_writes_every_section(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *TINY, "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    for section in SECTIONS:
        assert section in text, f"missing {section!r}"
    assert "python -m benchmarks.run --quick" in text  # the command is recorded
    for system in (
        "`ours`",
        "`keras`",
        "`keras-export`",
        "`ours-fp32`",
        "`ours-int8`",
        "score 1x35",
        "score 20x35",
        "generate 5",
    ):
        assert system in text, f"missing {system}"
    assert "failed" not in text.split("## Peak resident memory")[1]


def test_the_package_docstring_names_every_module():
    import pathlib

    import benchmarks

    modules = {p.stem for p in pathlib.Path(benchmarks.__file__).parent.glob("*.py")} - {"__init__"}
    assert {m for m in modules if f"`{m}`" not in benchmarks.__doc__} == set()

"""The differential harness's session summary: how many examples each path tried."""

import keras  # noqa: F401  (before keras_gated, as in tests/export/conftest.py)

from tests.differential.profiles import PROFILE, TRIED


def pytest_terminal_summary(terminalreporter):
    if not TRIED:
        return
    write = terminalreporter.write_line
    terminalreporter.section(f"differential examples tried ({PROFILE} profile)")
    width = max(len(path) for path in TRIED)
    for path, count in sorted(TRIED.items()):
        write(f"{path:<{width}}  {count:>6}")
    write(f"{'total':<{width}}  {sum(TRIED.values()):>6}")

"""`benchmarks.serving`: each request's graph-token count equals the ids the graph is fed,
counted independently at `lm.step` and `session.run`; the command writes its section with
every configuration on a tiny model. Nothing here looks at a timing."""

import shutil

import numpy as np
import pytest

from benchmarks import serving


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    path = tmp_path_factory.mktemp("serving") / "lm.onnx"
    serving.export_model(serving.ServingSetup(units=8), str(path))
    return path


class CountingSession:
    """A plain session that adds up the token ids fed to it."""

    def __init__(self, session, token_input):
        self.session, self.token_input, self.fed = session, token_input, 0

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, outputs, feeds):
        self.fed += feeds[self.token_input].size
        return self.session.run(outputs, feeds)


def test_graph_tokens_are_the_ids_fed(path):
    ((lm, session),) = serving.open_models(path, 1)
    fed = [0]
    step = lm.step

    def counting_step(tokens, states=None):
        fed[0] += np.asarray(tokens).size
        return step(tokens, states)

    lm.step = counting_step
    counting = CountingSession(session, lm.metadata["input"])
    calls = serving.call_mix(lm, 150, seed=3)
    assert {c.kind for c in calls} == set(serving.KINDS)
    for call in calls:
        before = fed[0] + counting.fed
        serving.perform(call, lm, counting)
        assert fed[0] + counting.fed - before == call.tokens, call
    assert sum(c.calls for c in calls) >= 150


def test_command_writes_every_configuration(path, tmp_path, monkeypatch):
    monkeypatch.setattr(serving, "export_model", lambda setup, out: shutil.copy(path, out))
    out = tmp_path / "section.md"
    assert serving.main(["--calls", "30", "--units", "8", "--rounds", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("## Serving under load (benchmarks/serving.py)")
    assert "--calls 30 --units 8 --rounds 1" in text and "Load average" in text
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ")][1:]
    assert [(r[0].strip("| "), r[1]) for r in rows] == [
        (str(t), str(s)) for t, s in serving.CONFIGS
    ]
    assert all(r[-1].strip(" |") == "0" for r in rows)  # no failed call

"""The model options of `keras-gated train` reach the LanguageModel: flag -> TrainConfig ->
`build_model`; `--help` documents each; `TrainConfig.validate` names a bad one."""

import dataclasses

import pytest

from keras_gated.cli.parser import build_parser
from keras_gated.training.config import TrainConfig

AWD_FLAGS = {  # flag -> (its text, the parsed value)
    "--units": ("24,40,16", [24, 40, 16]),
    "--embed-weight-dropout": ("0.1", 0.1),
    "--weight-dropout": ("0.3", 0.3),
    "--ar-alpha": ("2", 2.0),
    "--tar-beta": ("1", 1.0),
}
CELL_FLAGS = {"--layer-norm": ("true", True), "--zoneout": ("0.15", 0.15)}  # -> cell_options


def parse(argv):
    args = build_parser().parse_args(["train", "--out", "run", *argv])
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})


def test_flags_reach_the_model():
    from keras_gated.training.build import build_model

    argv = [part for flag, (text, _) in AWD_FLAGS.items() for part in (flag, text)]
    config = parse([*argv, "--layers", "3", "--embed-dim", "16"]).validate()
    for flag, (_, value) in AWD_FLAGS.items():
        assert getattr(config, flag[2:].replace("-", "_")) == value
    model_config = build_model(config, 11, stateful=False).get_config()
    for flag, (_, value) in AWD_FLAGS.items():
        assert model_config[flag[2:].replace("-", "_")] == value
    assert parse(["--units", "200"]).units == 200  # one width for every layer


def test_help_documents_each_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in AWD_FLAGS:
        assert flag in text
    for needle in (
        "1150,1150,400",
        "dropoute",
        "dropouti",
        "wdrop",
        "mean(y^2)",
        "temporal activation regularisation",
    ):
        assert needle in text


@pytest.mark.parametrize(
    "field,value",
    [
        ("units", [16, 0]),
        ("embed_weight_dropout", 1.0),
        ("weight_dropout", -0.1),
        ("ar_alpha", -1.0),
        ("tar_beta", -0.5),
        ("zoneout", 1.0),
        ("zoneout", -0.1),
    ],
)
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value}).validate()


def test_a_bad_width_list_is_refused_by_the_parser():
    with pytest.raises(SystemExit):
        parse(["--units", "24,x"])


def test_layer_norm_and_zoneout_flags_reach_the_cells():
    """`--layer-norm` alone (or `--layer-norm true`) and `--zoneout P` build cells with those
    options; lstm and gru only."""
    from keras_gated.training.build import build_model

    assert parse([]).layer_norm is False and parse([]).zoneout == 0.0
    assert parse(["--layer-norm", "false"]).layer_norm is False
    assert parse(["--layer-norm"]).layer_norm is True
    argv = [part for flag, (text, _) in CELL_FLAGS.items() for part in (flag, text)]
    for cell in ("gru", "lstm"):
        config = parse([*argv, "--cell", cell, "--embed-dim", "8", "--units", "8"]).validate()
        model = build_model(config, 11, stateful=False)
        assert model.cell_options == {"layer_norm": True, "zoneout": 0.15}
        for layer in model.rnn_layers:
            assert layer.cell.layer_norm and layer.cell.zoneout == 0.15
    for cell in ("rnn", "indrnn", "keras-lstm"):
        for flag, (text, _) in CELL_FLAGS.items():
            with pytest.raises(ValueError, match=flag[2:].replace("-", "_")):
                parse(["--cell", cell, flag, text]).validate()


def test_help_documents_the_cell_options(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for needle in ("--layer-norm", "--zoneout", "Krueger", "Ba et al."):
        assert needle in text

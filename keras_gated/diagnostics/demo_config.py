"""The recipe of the synthetic-task experiments (`keras-gated diagnose --demo` and `--sweep`).

Plain dataclasses and constants: the command's `--help` reads its defaults from here without
importing TensorFlow.
"""

import dataclasses

GATE_BIASES = ("chrono", "keras")  # see `DemoConfig.gate_bias`
TASK_NAMES = ("adding", "recall")  # `tasks.TASKS`, kept here so --help needs no TensorFlow
SWEEP_TASK = "adding"  # the task of `--sweep` (`sweep` says why not recall)
SWEEP_SEQ_LENS = (10, 30, 100, 300)  # T of `--sweep`
QUICK_SEQ_LENS = (5, 10)  # T of `--sweep --quick`


@dataclasses.dataclass
class DemoConfig:
    seq_len: int = 30  # T, steps in a sequence (the recall label is T - 1 steps back)
    units: int = 32  # U, the same for every cell
    batch_size: int = 32  # training batch
    eval_size: int = 256  # sequences the gradient norms and the metric are measured on
    train_steps: int = 500  # Adam steps for the "trained" models
    learning_rate: float = 1e-2  # Adam step size
    clipnorm: float = 1.0  # global-norm clipping, in training and in experiment 3
    # Gate biases of the LSTM and GRU at initialisation (every other weight: glorot_uniform
    # W, orthogonal U, zero b, for all three cells):
    #   "chrono" (Tallec & Ollivier 2018): each unit's memory time constant u ~ U[1, max_delay - 1],
    #            LSTM b_f = log(u), b_i = -b_f; GRU b_z = log(u) (z keeps h_{t-1} in our GRU)
    #   "keras": Keras's defaults, LSTM b_f = 1 (unit_forget_bias), GRU b_z = 0
    gate_bias: str = "chrono"
    max_delay: int = 300  # chrono's T_max, the same for every T (the sweep's longest)
    sigmas: tuple = (0.8, 1.25)  # sigma_1 of the vanishing and the exploding vanilla RNN
    clip_steps: int = 15  # SGD steps in experiment 3
    clip_learning_rate: float = 0.05  # SGD step size in experiment 3
    seed: int = 0  # weights and data

    def __post_init__(self):
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {self.seq_len}")
        if self.gate_bias not in GATE_BIASES:
            raise ValueError(f"gate_bias must be one of {GATE_BIASES}, got {self.gate_bias!r}")
        if self.max_delay < 3:
            raise ValueError(f"max_delay must be at least 3, got {self.max_delay}")


# `--sweep`: the demo's recipe with 1500 steps, with which the LSTM and GRU solved the adding
# problem up to T = 300 (MSE <= 3.2e-4; 6.5 to 9 minutes on 2 busy cores).
SWEEP = DemoConfig(train_steps=1500)
# `--quick`: enough to exercise every stage and file in seconds, not to learn.
QUICK = DemoConfig(
    seq_len=8, units=8, batch_size=16, eval_size=32, train_steps=5, max_delay=10, clip_steps=4
)


def describe_init(cell, config):
    """The initialisation of `cell` ("rnn", "lstm", "gru") under `config`, in words."""
    base = "W glorot_uniform, U orthogonal"
    if cell == "rnn" or (cell == "gru" and config.gate_bias == "keras"):
        return f"{base}, b = 0"
    if config.gate_bias == "keras":
        return f"{base}, b_f = 1 (unit_forget_bias), other b = 0"
    gates = "b_f = log(u), b_i = -b_f" if cell == "lstm" else "b_z = log(u)"
    return f"{base}, chrono {gates}, u ~ U[1, {config.max_delay - 1}], other b = 0"

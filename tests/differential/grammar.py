"""The grammar: hypothesis strategies that draw small recurrent models and their inputs.

A drawn `ModelSpec` is plain data (frozen dataclasses of ints, strings, bools and tuples), so
hypothesis prints it as a reproducer and shrinks it towards Keras's defaults; `build.py` turns
one spec into two Keras models, ours and the built-in oracle, with the same weights.

    model  := inputs [initial_state] block [block] [head], the blocks optionally in a nested Model
    inputs := features (B, T or None, D) with mask: none | Embedding(mask_zero=True) | Masking
              | explicit boolean `mask=`, rows full, right-padded, left-padded, holed or empty
    block  := layer | RNN(cell) | RNN(StackedRNNCells(cell, cell[, cell]))
              | Bidirectional(layer[, backward_layer], merge_mode)
    cell   := kind (lstm | gru | simple_rnn), units, Keras constructor options; inside RNN and
              StackedRNNCells our model holds our cell or Keras's own (a mix)
    head   := none | TimeDistributed(Dense) | Dense | GlobalAveragePooling1D (reads the mask)
    initial_state := none | Input tensors | Dense(tanh) of another input, for the first block;
              the second block may start from the first's final states (encoder-decoder)

Nothing here imports `keras_gated`; the strategies know Keras's arguments, not our classes.
"""

import dataclasses

import hypothesis.strategies as st
import keras

KINDS = ("lstm", "gru", "simple_rnn")
N_STATES = {"lstm": 2, "gru": 1, "simple_rnn": 1}
MERGE_MODES = ("concat", "sum", "mul", "ave", None)
WRAPPERS = ("layer", "rnn", "stacked", "bidirectional")
MASKINGS = ("none", "embedding", "masking", "explicit")
ROW_PATTERNS = ("full", "right", "left", "holes", "empty")
HEADS = ("none", "time_distributed", "dense", "pooling")
INITIAL_STATES = ("none", "input", "dense")

# Each option's values, Keras's default first (hypothesis shrinks towards the first).
ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")
RECURRENT_ACTIVATIONS = ("sigmoid", "hard_sigmoid", "tanh")
RATES = (0.0, 0.25, 0.5)
DEFAULTS = {
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "use_bias": True,
    "unit_forget_bias": True,
    "reset_after": True,
    "dropout": 0.0,
    "recurrent_dropout": 0.0,
}

# Keras's JAX RNN repeats states[0] (h0) as the output of masked steps before a sequence's
# first real step (keras/src/backend/jax/rnn.py: `output_tm1 = states[0]`); its TensorFlow and
# torch RNNs, and ours on every backend, repeat zeros (tests/oracles/harness.py,
# `keras_masked_outputs`). A Keras divergence between its own backends, not ours: on JAX,
# models with an initial state, or a stateful layer (whose second call starts from the carried
# state, or a block started from another's states), draw only rows whose first and last steps
# are real.
JAX_LEADING_MASK_DIVERGENCE = True

# Keras's Bidirectional.compute_mask fails for a stateful layer with return_state (it
# multiplies a generator: `state_mask * 2`, keras/src/layers/rnn/bidirectional.py), built-in
# or ours alike: the grammar does not draw that combination.
KERAS_BIDIRECTIONAL_STATEFUL_RETURN_STATE = True

SMALL = dict(batch=(1, 3), time=(1, 5), features=(1, 4), units=(1, 5))
VOCAB = 11  # token ids 1..10; 0 is padding (Embedding(mask_zero=True))
CONTEXT = 3  # width of the input that Dense layers turn into initial states


def freeze(options):
    """A dict as sorted (name, value) pairs: hashable, and printed in a stable order."""
    return tuple(sorted(options.items()))


@dataclasses.dataclass(frozen=True)
class CellSpec:
    kind: str
    units: int
    options: tuple = ()  # (name, value) pairs of non-default Keras constructor options
    keras_cell: bool = False  # inside RNN/StackedRNNCells: our model holds Keras's own cell

    @property
    def kw(self):
        return dict(self.options)

    @property
    def has_dropout(self):
        return self.kw.get("dropout", 0.0) > 0 or self.kw.get("recurrent_dropout", 0.0) > 0

    @property
    def n_states(self):
        return N_STATES[self.kind]


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    wrapper: str  # one of WRAPPERS
    cells: tuple  # CellSpec: one, or two or three for "stacked"
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    stateful: bool = False
    merge_mode: object = "concat"  # Bidirectional only
    backward: object = None  # Bidirectional's explicit backward_layer (a CellSpec), or None

    @property
    def state_sizes(self):
        """The units of each state the block takes as initial_state, in Keras's order."""
        sizes = [c.units for c in self.cells for _ in range(c.n_states)]
        if self.wrapper == "bidirectional":
            back = self.backward or self.cells[0]
            sizes += [back.units] * back.n_states
        return sizes

    @property
    def all_cells(self):
        return self.cells + ((self.backward,) if self.backward else ())

    @property
    def sequence_output(self):
        """Whether the block's first output is one (B, T, F) tensor."""
        return self.return_sequences and not (
            self.wrapper == "bidirectional" and self.merge_mode is None
        )


@dataclasses.dataclass(frozen=True)
class InputSpec:
    batch: int
    time: int
    static_time: bool  # False: the model's time axis is None
    features: int
    masking: str  # one of MASKINGS
    rows: tuple  # per row, T bools: True is a real step (all True when masking is "none")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    inputs: InputSpec
    blocks: tuple  # BlockSpec, one or two
    initial_state: str = "none"  # one of INITIAL_STATES, for the first block
    head: str = "none"  # one of HEADS
    nested: bool = False  # the blocks inside an inner functional Model
    chained: bool = False  # the second block's initial_state: the first block's final states
    seed: int = 0  # weights and input values

    @property
    def cells(self):
        return [c for b in self.blocks for c in b.all_cells]

    @property
    def has_dropout(self):
        return any(c.has_dropout for c in self.cells)

    @property
    def stateful(self):
        return any(b.stateful for b in self.blocks)


def backend():
    return keras.backend.backend()


@st.composite
def cell_options(draw, kind, dropout=True):
    """Keras constructor options for a `kind` cell; only non-default values are kept."""
    choices = {"activation": ACTIVATIONS, "use_bias": (True, False)}
    if kind != "simple_rnn":
        choices["recurrent_activation"] = RECURRENT_ACTIVATIONS
    if kind == "lstm":
        choices["unit_forget_bias"] = (True, False)
    if kind == "gru":
        choices["reset_after"] = (True, False)
    if dropout:
        choices["dropout"] = RATES
        choices["recurrent_dropout"] = RATES
    options = {}
    for name, values in choices.items():
        value = draw(st.sampled_from(values))
        if value != DEFAULTS[name]:
            options[name] = value
    return freeze(options)


@st.composite
def cells(draw, kind=None, units=None, dropout=True, keras_cell=False):
    kind = kind or draw(st.sampled_from(KINDS))
    units = units or draw(st.integers(*SMALL["units"]))
    options = draw(cell_options(kind, dropout=dropout))
    return CellSpec(kind, units, options, keras_cell and draw(st.booleans()))


@st.composite
def blocks(draw, wrappers=WRAPPERS, dropout=True, stateful=False, sequences=None):
    """One recurrent block; `sequences` forces return_sequences (True for a block that feeds
    another), `stateful` allows stateful blocks."""
    wrapper = draw(st.sampled_from(wrappers))
    if wrapper == "stacked":
        chain = tuple(
            draw(st.lists(cells(dropout=dropout, keras_cell=True), min_size=2, max_size=3))
        )
    else:
        chain = (draw(cells(dropout=dropout, keras_cell=wrapper == "rnn")),)
    return_sequences = draw(st.booleans()) if sequences is None else sequences
    block = dict(
        wrapper=wrapper,
        cells=chain,
        return_sequences=return_sequences,
        return_state=draw(st.booleans()),
        stateful=stateful and draw(st.booleans()),
    )
    if (
        wrapper == "bidirectional"
        and block["stateful"]
        and block["return_state"]
        and KERAS_BIDIRECTIONAL_STATEFUL_RETURN_STATE
    ):
        block["return_state"] = False
    if wrapper == "bidirectional":
        block["merge_mode"] = draw(st.sampled_from(MERGE_MODES[:-1] if sequences else MERGE_MODES))
        if draw(st.booleans()):  # an explicit backward_layer: same kind and units, own options
            block["backward"] = draw(
                cells(kind=chain[0].kind, units=chain[0].units, dropout=dropout)
            )
    else:
        block["go_backwards"] = draw(st.booleans())
    return BlockSpec(**block)


def row(pattern, time, cut, holes):
    """One mask row of `time` steps: True is a real step."""
    if pattern == "full":
        return (True,) * time
    if pattern == "empty":
        return (False,) * time
    if pattern == "right":
        return (True,) * cut + (False,) * (time - cut)
    if pattern == "left":
        return (False,) * (time - cut) + (True,) * cut
    return tuple(holes[:time])


@st.composite
def mask_rows(draw, batch, time, real_ends=False):
    """Per row a pattern; `real_ends`: the first and last steps are real (see
    JAX_LEADING_MASK_DIVERGENCE)."""
    rows = []
    for _ in range(batch):
        pattern = draw(st.sampled_from(ROW_PATTERNS))
        cut = draw(st.integers(1, time))
        holes = draw(st.lists(st.booleans(), min_size=time, max_size=time))
        mask = row(pattern, time, cut, holes)
        if real_ends:
            mask = (True,) + mask[1:-1] + (True,) if time > 1 else (True,)
        rows.append(mask)
    return tuple(rows)


@st.composite
def models(
    draw,
    wrappers=WRAPPERS,
    maskings=MASKINGS,
    heads=HEADS,
    dropout=True,
    stateful=True,
    nested=True,
    initial_states=INITIAL_STATES,
    two_blocks=True,
    static_time=None,
):
    """A ModelSpec; each argument narrows the grammar for a path that cannot take it all."""
    first = draw(blocks(wrappers, dropout=dropout, stateful=stateful))
    chain = [first]
    chained = False
    if two_blocks and first.sequence_output and draw(st.booleans()):
        chained = first.return_state and first.wrapper in ("layer", "rnn") and draw(st.booleans())
        if chained:  # encoder-decoder: the second block starts from the first's final states
            cell = draw(cells(first.cells[0].kind, first.cells[0].units, dropout=dropout))
            second = BlockSpec(
                draw(st.sampled_from(("layer", "rnn"))),
                (cell,),
                return_sequences=draw(st.booleans()),
                return_state=draw(st.booleans()),
                go_backwards=draw(st.booleans()),
            )
        else:
            second = draw(blocks(wrappers, dropout=dropout, stateful=first.stateful and stateful))
        chain.append(second)
    last = chain[-1]
    if last.wrapper == "bidirectional" and last.merge_mode is None:
        head = "none"  # two outputs, forward and backward
    elif last.sequence_output:
        head = draw(st.sampled_from(heads))
    else:  # (B, F): only Dense reads it
        head = draw(st.sampled_from([h for h in heads if h in ("none", "dense")]))
    is_stateful = any(b.stateful for b in chain)
    initial_state = "none"
    if first.wrapper != "stacked" and not is_stateful:
        initial_state = draw(st.sampled_from(initial_states))
    masking = draw(st.sampled_from(maskings))
    is_nested = nested and initial_state == "none" and draw(st.booleans())
    batch = draw(st.integers(*SMALL["batch"]))
    time = draw(st.integers(*SMALL["time"]))
    real_ends = (
        JAX_LEADING_MASK_DIVERGENCE
        and backend() == "jax"
        and (initial_state != "none" or is_stateful or chained)
    )
    rows = ((True,) * time,) * batch
    if masking != "none":
        rows = draw(mask_rows(batch, time, real_ends=real_ends))
    inputs = InputSpec(
        batch=batch,
        time=time,
        static_time=draw(st.booleans()) if static_time is None else static_time,
        features=draw(st.integers(*SMALL["features"])),
        masking=masking,
        rows=rows,
    )
    return ModelSpec(
        inputs,
        tuple(chain),
        initial_state,
        head,
        is_nested,
        chained,
        seed=draw(st.integers(0, 2**16)),
    )

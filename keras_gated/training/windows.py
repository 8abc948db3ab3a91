"""The training windows of each epoch, and the learning rate each window trains with.

Fixed windows (the default): every pass over the training stream is its `bptt_batches`,
K = (L - 1) // T windows of T = seq_len steps.

Variable windows (`TrainConfig.variable_bptt`; AWD-LSTM, Merity et al. 2017, section 4.1):
pass p cuts every row into windows of lengths T_1..T_K drawn by `data.batching.window_lengths`
from a generator seeded (seed, p), so boundaries move between passes, a resumed run draws the
same ones, and the windows tile all L - 1 input steps of every row (every training token
once per pass; the last window is what remains). Window k trains with learning rate

    lr_k = lr * T_k / T                                   (`LengthScaledLearningRate`)

restored after its step, so every token of a pass weighs alike whatever its window. AWD-LSTM
scales by the drawn length; here the length trained, which differs only for the last window.

Epoch e is pass e; with `steps_per_epoch` S > 0 it is windows e*S .. (e+1)*S - 1 of the
endless sequence of passes 0, 1, 2, ...

Compiled shapes: an XLA-compiled step (`TrainConfig.xla`, on a CPU) has static shapes, so
each new window length compiles the step once; a length seen before reuses it. Lengths lie in
[1, T + 20]: 53 distinct over 40 PTB-sized passes at T = 35 (44 in the first; 79 at T = 70).
Measured on a shared 2-core CPU (2-layer LSTM, U = 200, B = 32, T = 35, 40k tokens), one
compilation takes 6-12 s against 0.13-0.28 s per cached step, so the first epoch of 36
windows took 178 s (17 compilations) where fixed windows took 25 s; epochs 2 and 3 compiled
8 and 2 new lengths. Without XLA, a first epoch took 10-11 s with either windows. On PTB
(1,371 windows a pass at B = 20), XLA's 62 ms faster step (BENCHMARKS.md, U = 650) saves
about 85 s a pass, repaying ~50 compilations of ~8 s within about 5 of AWD-LSTM's hundreds
of epochs; a short run on a small corpus trains faster with `--xla false`. Padding to bucket
lengths (multiples of 8: 7 shapes) would compute 3.5 padded steps a window on average, 10%
at T = 35 and so about what XLA gains, and need a masked loss and perplexity; compiling per
length is exact.
"""

import functools

import keras
import numpy as np

from keras_gated.data.batching import bptt_batches, variable_bptt_batches, window_lengths


class TrainingWindows:
    """The training stream's windows, epoch by epoch: their lengths and their batches.

    Args:
        ids: (N,) training token ids.
        batch_size: B.
        seq_len: T.
        variable: draw each pass's window lengths (`window_lengths`, seeded (seed, pass))
            instead of cutting fixed windows of T.
        seed: seed of the variable lengths.
        steps_per_epoch: S > 0 makes epochs slices of S windows; 0: an epoch is a pass.
    """

    def __init__(self, ids, batch_size, seq_len, variable=False, seed=0, steps_per_epoch=0):
        self.ids, self.batch_size, self.seq_len = np.asarray(ids), batch_size, seq_len
        self.variable, self.seed, self.steps_per_epoch = variable, seed, steps_per_epoch
        self._lengths = {}  # pass -> its window lengths (fixed windows: key 0 for every pass)
        self._fixed = None  # the batches of every pass, for fixed windows

    def lengths(self, epoch):
        """The window lengths of epoch `epoch`, in training order."""
        return [
            t
            for p, first, count in self._slices(epoch)
            for t in self._pass_lengths(p)[first : first + count]
        ]

    def dataset(self, epoch):
        """The batches (inputs, targets), int32 (B, T_k), of epoch `epoch`, in order."""
        parts = []
        for p, first, count in self._slices(epoch):
            batches = self._pass_batches(p)
            if (first, count) != (0, len(self._pass_lengths(p))):
                batches = batches.skip(first).take(count)
            parts.append(batches)
        return functools.reduce(lambda a, b: a.concatenate(b), parts)

    def _slices(self, epoch):
        """[(pass, first window, window count)] making up epoch `epoch`."""
        if not self.steps_per_epoch:
            return [(epoch, 0, len(self._pass_lengths(epoch)))]
        p, first, need = 0, epoch * self.steps_per_epoch, self.steps_per_epoch
        while first >= len(self._pass_lengths(p)):
            first -= len(self._pass_lengths(p))
            p += 1
        slices = []
        while need:
            count = min(need, len(self._pass_lengths(p)) - first)
            slices.append((p, first, count))
            p, first, need = p + 1, 0, need - count
        return slices

    def _pass_lengths(self, p):
        key = p if self.variable else 0
        if key not in self._lengths:
            steps = len(self.ids) // self.batch_size - 1  # L - 1
            self._lengths[key] = (
                window_lengths(steps, self.seq_len, np.random.default_rng([self.seed, p]))
                if self.variable
                else [self.seq_len] * (steps // self.seq_len)
            )
        return self._lengths[key]

    def _pass_batches(self, p):
        if self.variable:  # built when needed: each holds a copy of the stream
            return variable_bptt_batches(self.ids, self.batch_size, self._pass_lengths(p))
        if self._fixed is None:
            self._fixed = bptt_batches(self.ids, self.batch_size, self.seq_len)
        return self._fixed


class LengthScaledLearningRate(keras.callbacks.Callback):
    """Trains window k of each epoch with learning rate lr * T_k / T, then restores lr.

    Args:
        windows: the `TrainingWindows` the model is fitted on, one `fit` epoch per epoch.
    """

    def __init__(self, windows):
        super().__init__()
        self.windows, self.lengths, self.base = windows, [], None

    def on_epoch_begin(self, epoch, logs=None):
        self.lengths = self.windows.lengths(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        self.base = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        optimizer.learning_rate = self.base * self.lengths[batch] / self.windows.seq_len

    def on_train_batch_end(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.base

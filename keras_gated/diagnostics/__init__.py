"""Diagnostics: gradient flow through time, gate activity, training curves, and their pictures.

    model_gradient_norms(model, tokens, targets, loss_at="last")  # layer -> state -> (T,)
    layer_gradient_norms(layer, x, loss_fn)                      # one layer, any loss
    gate_saturation(gate_activity(model, tokens))                 # layer -> gate -> fractions
    diagnose_run("runs/NAME", "out/");  write_demo(run_demo(), "out/")
    write_sweep(run_sweep(DemoConfig(), seq_lens=(10, 30, 100, 300)), "out/")

Names are imported lazily, so `keras_gated.cli.diagnose` builds its parser without TensorFlow.
"""

from keras_gated import lazy

_PUBLIC = {
    "LOSS_AT": "gradient_flow",
    "unroll": "gradient_flow",
    "layer_gradient_norms": "gradient_flow",
    "model_gradient_norms": "gradient_flow",
    "next_token_loss": "gradient_flow",
    "growth_rates": "gradient_flow",
    "gradient_reach": "gradient_flow",
    "largest_singular_value": "gradient_flow",
    "state_names": "gradient_flow",
    "gate_activity": "gate_statistics",
    "gate_saturation": "gate_statistics",
    "read_training_log": "curves",
    "read_grad_norms": "curves",
    "recall_batch": "recall_task",
    "recall_model": "recall_task",
    "chrono_gate_bias": "chrono",
    "DemoConfig": "demo_config",
    "run_demo": "demo",
    "write_demo": "demo",
    "summarize_demo": "demo",
    "run_sweep": "sweep",
    "write_sweep": "sweep",
    "summarize_sweep": "sweep",
    "diagnose_run": "diagnose",
    "plot_gradient_comparison": "plots",
    "plot_vanishing_exploding": "plots",
    "plot_sweep": "plots",
    "plot_gradient_flow": "plots",
    "plot_gate_heatmaps": "plots",
    "plot_saturation": "plots",
    "plot_training_curves": "plots",
}

__getattr__, __dir__, __all__ = lazy.attach(
    __name__, {name: f"{__name__}.{module}" for name, module in _PUBLIC.items()}
)

"""Names shared by the engine, the command line and the docs (importing this loads no torch)."""

GRADIENT_METHODS = ("saliency", "input_x_gradient", "integrated_gradients")
METHODS = GRADIENT_METHODS + ("occlusion",)
BASELINES = ("zero", "pad")
TARGETS = ("teacher", "gold")
DTYPES = ("auto", "fp32", "bf16")

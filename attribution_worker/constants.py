"""Names shared by the engine, the command line and the docs (importing this loads no torch)."""

GRADIENT_METHODS = ("saliency", "input_x_gradient", "integrated_gradients")
METHODS = GRADIENT_METHODS + ("occlusion",)
BASELINES = ("auto", "zero", "pad")
TARGETS = ("teacher", "gold")
DTYPES = ("auto", "fp32", "bf16")
ANSWER_BACKENDS = ("torch", "vllm")
# Integrated gradients defaults per teacher kind: (baseline, n_steps), chosen so that the median
# completeness error is < 0.05 on tiny T5 / GPT-2 teachers (tests/attribution_worker/test_faithfulness_ig.py;
# measured on 20 rows: T5 pad 16 steps median 0.043, 32 steps 0.017; zero baseline 32 steps 0.48).
# T5 normalises its input embeddings, so scaling toward zero changes nothing until very close to
# zero: the pad-embedding baseline converges where the zero baseline does not.
IG_DEFAULTS = {"seq2seq": ("pad", 32), "causal": ("pad", 16), "classifier": ("pad", 16), "multiple_choice": ("pad", 16)}
# ERASER AOPC: rationale sizes as fractions of the row's words (DeYoung et al. 2020 use 1, 5, 10, 20, 50%).
AOPC_FRACTIONS = (0.01, 0.05, 0.10, 0.20, 0.50)

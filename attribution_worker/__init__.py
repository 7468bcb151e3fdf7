"""The attribution engine (DESIGN.md "Attribution"): teacher answers, word scores, top-k rationales.

Library API: `engine.AttributionConfig`, `engine.AttributionEngine` (module docstrings give the
contract); tiny teachers for tests: `tiny.build_tiny_teacher`; a teacher from a pretrained encoder (the demo's):
`pretrained.build_classifier_teacher`, fine-tuned by `tiny_train.train_tiny_teacher`.
Imports are lazy so `import attribution_worker` stays cheap (torch loads on first use).
"""
__all__ = ["AttributionConfig", "AttributionEngine", "build_tiny_teacher"]


def __getattr__(name):
    if name in ("AttributionConfig", "AttributionEngine"):
        from . import engine

        return getattr(engine, name)
    if name == "build_tiny_teacher":
        from .tiny import build_tiny_teacher

        return build_tiny_teacher
    raise AttributeError(name)

"""Benchmarks, one command each (`.venv/bin/python benchmarks/<name>.py`); a regular package so that the quality
benchmark's parts import as `benchmarks.distill` and no installed package of the same name can shadow them."""

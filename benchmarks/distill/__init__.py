"""The parts of the quality benchmark, whose one command is benchmarks/distill_quality.py: its teachers
(teachers.py), the rationales it derives for the comparison arms (rationales.py), the rows it writes to the store
(shards.py), and the student arms with the tables it prints (arms.py). benchmarks/ is not an installed package:
the command puts the repository root on sys.path, as the tests' conftest does."""

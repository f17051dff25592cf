"""`python -m evals` as torchrun starts it, but with almost no host RAM free for rank 1 alone: one process short of
memory beside others that are not (tests/finetune/test_distributed.py)."""

import os

import finetune.memory

if os.environ.get("RANK") == "1":
    finetune.memory.free_bytes = lambda device="cpu": 1000

from evals.cli import app  # noqa: E402

app(prog_name="evals")

"""The three paths of resume-feedback in one `evals decide`, without keys: prompted gpt-4o-mini and its
hosted fine-tune answered by the stand-in server (tests/standin_server.py, through the official SDK), and
a local model run on this machine.

    .venv/bin/python bench/three_paths.py [--local local:smollm2+lora:finetune/adapters/resume-feedback]

The stand-in answers the golden set with its references except on `--base-wrong` examples (prompted) and
`--tuned-wrong` (the fine-tune), counts words as tokens, and fine-tunes as OpenAI's API does (files, a job
polled to the end, trained tokens = training words x epochs). `evals finetune resume-feedback --on openai`
and `evals decide` run as a user runs them, in a scratch folder (store, cache and finetune/hosted/ there).
Prints the commands' output: the job's cost, then the report. The local side is whatever `--local` names
(default the untrained local:smollm2, about 1.5 minutes on 2 CPU cores; a trained adapter if you have one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.standin_server import StandinServer, last_user_message

TASK = ROOT / "golden_sets" / "resume-feedback"


def answers(wrong_base: int, wrong_tuned: int):
    golden = [json.loads(line) for line in (TASK / "golden.jsonl").read_text().splitlines() if line.strip()]
    by_resume = {row["resume"].strip(): (i, row["reference"]) for i, row in enumerate(golden)}

    def answer(body: dict) -> str:
        text = last_user_message(body).removeprefix("Resume:").strip()
        i, reference = by_resume.get(text, (0, {"score": 3, "issues": [], "feedback": "?"}))
        wrong = wrong_tuned if body["model"].startswith("ft:") else wrong_base
        if i % len(golden) < wrong:  # the first few golden examples: a wrong score and no issues
            reference = {**reference, "score": 1 if reference["score"] > 3 else 5, "issues": []}
        return json.dumps(reference)

    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--local", default="local:smollm2")
    parser.add_argument("--base-wrong", type=int, default=5)
    parser.add_argument("--tuned-wrong", type=int, default=1)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="three-paths-"))
    with StandinServer(answers(args.base_wrong, args.tuned_wrong), record=False) as server:
        env = {**os.environ, "OPENAI_API_KEY": "sk-standin-not-a-key", "OPENAI_BASE_URL": server.base_url,
               "EVALS_STORE": str(scratch / "evals.db"), "EVALS_CACHE_DIR": str(scratch / "cache"),
               "EVALS_PROGRESS": "plain", "PYTHONPATH": str(ROOT)}
        (scratch / "hosted.yaml").write_text("poll_s: 0.05\n")
        evals = [sys.executable, "-m", "evals"]
        for cmd in ([*evals, "finetune", str(TASK), "--on", "openai", "--config", str(scratch / "hosted.yaml")],
                    [*evals, "decide", str(TASK), "--candidate", "openai:ft@resume-feedback", "--candidate",
                     args.local, "--examples", "2", "--markdown", str(scratch / "decide.md")]):
            print("$", " ".join(cmd[2:]), flush=True)
            subprocess.run(cmd, env=env, cwd=scratch, check=True)
    print(f"report: {scratch / 'decide.md'}")


if __name__ == "__main__":
    main()

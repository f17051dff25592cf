"""A triage task whose stand-in model answers depend on the prompt in known ways, for `evals optimize` tests.

Tickets are labelled billing, outage or account. The stand-in model answers a ticket's true label only when
the prompt shows a worked example answered with that label, or when the system prompt carries HINT (what the
stand-in proposer suggests); otherwise it answers "billing". So under the seed prompt (no demos, no hint) it
is right exactly on the billing tickets, a prompt whose demos cover every label is right on all of them, and
so is the seed's instruction with HINT added.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.standin_server import _text, last_user_message

LABELS = ("billing", "outage", "account")
HINT = "Outages (anything down, failing or timing out) are 'outage'; logins and passwords are 'account'."
SEED_SYSTEM = "Triage the support ticket. Answer with one word: billing, outage or account."
REFLECTION = "I provided an assistant with the following instructions"
PHRASES = {
    "billing": ["I was charged twice on invoice {n} and want a refund of the duplicate payment",
                "My credit card was billed {n} dollars more than the price on my subscription invoice",
                "Please send a refund for the payment {n} you took after I cancelled the plan"],
    "outage": ["The dashboard has been down since {n} minutes ago and every page times out",
               "Your API returns 503 errors for all requests, service outage for {n} of our servers",
               "The whole site is unreachable, the status page shows a failure in region {n}"],
    "account": ["I cannot log in, the password reset email for user {n} never arrives",
                "My account {n} is locked after too many wrong password attempts, please unlock it",
                "Two-factor login code for username {n} is rejected and I am locked out of my profile"],
}


def ticket(i: int, prefix: str) -> dict[str, Any]:
    label = LABELS[i % 3]
    text = PHRASES[label][(i // 3) % 3].format(n=(1000 if prefix == "t" else 5000) + i)
    return {"id": f"{prefix}{i:03d}", "ticket": text, "reference": label}


def rows(n: int, prefix: str) -> list[dict[str, Any]]:
    return [ticket(i, prefix) for i in range(n)]


def truth(path: Path) -> dict[str, str]:
    records = (json.loads(line) for line in path.read_text().splitlines())
    return {f"Ticket: {r['ticket']}": r["reference"] for r in records}


class TriageModel:
    """The stand-in's answer(body): the model and, for reflection prompts, the proposer."""

    def __init__(self, *files: Path):
        self.files = files
        self.proposals = 0
        self.fail = ""  # tickets containing this are not answered (the connection drops): a provider error

    def __call__(self, body: dict[str, Any]) -> str:
        asked = last_user_message(body)
        if REFLECTION in asked:
            self.proposals += 1
            current = asked.split("```")[1].strip()
            return f"```\n{current}\n{HINT}\n```"
        if self.fail and self.fail in asked:
            raise ConnectionError("a request the test fails")
        labels = {k: v for f in self.files for k, v in truth(f).items()}
        messages = body.get("messages") or []
        system = " ".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
        shown = {_text(m.get("content")).strip() for m in messages if m.get("role") == "assistant"}
        right = labels.get(asked.strip())
        if right is not None and (HINT in system or right in shown):
            return right
        return "billing"


def write_task(folder: Path, base_url: str, *, n_train: int = 60, n_golden: int = 12, **extra: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (("train.jsonl", rows(n_train, "t")), ("golden.jsonl", rows(n_golden, "g"))):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in data))
    spec = {
        "name": "triage",
        "dataset": {"golden": "golden.jsonl", "train": "train.jsonl", "fields": ["ticket"]},
        "prompt": {"system": SEED_SYSTEM, "user": "Ticket: {{ ticket }}"},
        "models": [{"spec": "openai:gpt-4o-mini", "base_url": base_url, "max_tokens": 8, "concurrency": 4}],
        "metrics": [{"name": "exact_match", "ignore_case": True}],
        "pass": {"exact_match": 1},
        "decision": {"baseline": "openai:gpt-4o-mini", "volume": 100000},
        **extra,
    }
    (folder / "task.yaml").write_text("# the triage task (a test's)\n" + yaml.safe_dump(spec, sort_keys=False))
    return folder

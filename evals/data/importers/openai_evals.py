"""OpenAI Evals samples JSONL -> ImportedTask.

Each line is `{"input": <chat messages> | <prompt string>, "ideal": <string> | [<strings>]}`. Messages
shared by every sample at the start of the conversation (a system prompt, few-shot turns written as
user/assistant pairs or as system messages named example_user/example_assistant) become the task's
system prompt and few-shot examples; the rest becomes the example's `input` field. The eval class
(from the registry YAML's `class:`) picks the metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evals.data.golden import iter_jsonl
from evals.data.importers import ImportedTask, example_ids, literal
from evals.errors import EvalsError

# eval class -> (metric entry, note on how it differs from the source)
EVAL_CLASSES: dict[str, tuple[dict[str, Any], str]] = {
    "match": ({"name": "exact_match", "ignore_case": False},
              "OpenAI Evals `Match` accepts an answer that starts with an ideal answer; `exact_match` needs the "
              "whole answer to equal one (whitespace normalised, case kept)."),
    "includes": ({"name": "includes", "ignore_case": False},
                 "`Includes` -> `includes`: an ideal answer must appear in the answer (case kept, as the source's "
                 "default)."),
    "fuzzy_match": ({"name": "includes", "ignore_case": True},
                    "`FuzzyMatch` also accepts an answer contained in the ideal one; `includes` (ignoring case) only "
                    "accepts an ideal answer contained in the answer."),
}
CLASS_ALIASES = {"evals.elsuite.basic.match:Match": "match", "evals.elsuite.basic.includes:Includes": "includes",
                 "evals.elsuite.basic.fuzzy_match:FuzzyMatch": "fuzzy_match", "Match": "match",
                 "Includes": "includes", "FuzzyMatch": "fuzzy_match", "fuzzy-match": "fuzzy_match"}
ROLES = ("system", "user", "assistant")


def _messages(value: Any, path: Path, line: int) -> list[tuple[str, str]]:
    """(role, content) pairs, with named system few-shot messages turned into user/assistant turns."""
    if isinstance(value, str):
        return [("user", value)]
    if not isinstance(value, list) or not value:
        raise EvalsError("expected a prompt string or a non-empty list of chat messages", file=path, line=line,
                         field="input")
    out = []
    for i, message in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(message, dict):
            raise EvalsError("expected a message object with role and content", file=path, line=line, field=where)
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise EvalsError(f"role must be one of {', '.join(ROLES)}, got {role!r}", file=path, line=line,
                             field=f"{where}.role")
        if not isinstance(content, str):
            raise EvalsError("content must be a string", file=path, line=line, field=f"{where}.content")
        name = message.get("name")
        if role == "system" and name == "example_user":
            role = "user"
        elif role == "system" and name == "example_assistant":
            role = "assistant"
        out.append((role, content))
    if out[-1][0] == "user" and not out[-1][1].strip():
        raise EvalsError("the last user message is empty", file=path, line=line, field=f"input[{len(out) - 1}].content")
    if out[-1][0] != "user":
        raise EvalsError("the conversation must end with a user message (the one the model answers)",
                         file=path, line=line, field=f"input[{len(out) - 1}].role")
    return out


def _ideals(value: Any, path: Path, line: int) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
        raise EvalsError("expected a string or a non-empty list of strings", file=path, line=line, field="ideal")
    ideals = [str(v) for v in values]
    if not all(s.strip() for s in ideals):
        raise EvalsError("an ideal answer is empty", file=path, line=line, field="ideal")
    return ideals


def _read_samples(path: Path) -> list[tuple[int, list[tuple[str, str]], list[str]]]:
    samples = []
    for record, line in iter_jsonl(path):
        for key in ("input", "ideal"):
            if key not in record:
                raise EvalsError("missing", file=path, line=line, field=key)
        samples.append((line, _messages(record["input"], path, line), _ideals(record["ideal"], path, line)))
    if not samples:
        raise EvalsError("no samples in the file", file=path)
    return samples


def _shared_prefix(conversations: list[list[tuple[str, str]]]) -> int:
    """How many leading messages every conversation shares, cut back to system messages plus whole
    user/assistant pairs, and always leaving each conversation's last message out."""
    n = min(len(c) for c in conversations) - 1
    for i in range(n):
        if any(c[i] != conversations[0][i] for c in conversations):
            n = i
            break
    shared = conversations[0][:n]
    systems = 0
    while systems < len(shared) and shared[systems][0] == "system":
        systems += 1
    pairs = 0
    while (systems + 2 * pairs + 1 < len(shared) and shared[systems + 2 * pairs][0] == "user"
           and shared[systems + 2 * pairs + 1][0] == "assistant"):
        pairs += 1
    return systems + 2 * pairs


def read_openai_evals(path: Path, name: str, eval_class: str = "match") -> ImportedTask:
    key = CLASS_ALIASES.get(eval_class, eval_class.lower())
    if key not in EVAL_CLASSES:
        raise EvalsError(f"unsupported eval class '{eval_class}'; evals maps: "
                         "match (evals.elsuite.basic.match:Match), includes, fuzzy_match")
    metric, class_note = EVAL_CLASSES[key]
    samples = _read_samples(path)
    conversations = [m for _, m, _ in samples]
    shared = _shared_prefix(conversations)
    prefix = conversations[0][:shared]
    system_parts = [content for role, content in prefix if role == "system"]
    turns = prefix[len(system_parts):]
    few_shot = [{"fields": {"input": turns[i][1]}, "answer": turns[i + 1][1]} for i in range(0, len(turns), 2)]

    notes = [class_note]
    rows, fields = [], ["input"]
    varying_system = any(len(c) > shared + 1 and c[shared][0] == "system" for c in conversations)
    flattened = 0
    for (line, messages, ideals), example_id in zip(samples, example_ids(name, len(samples))):
        rest = messages[shared:]
        row: dict[str, Any] = {"id": example_id}
        if varying_system:
            row["system"] = rest.pop(0)[1] if rest[0][0] == "system" else ""
        if len(rest) > 1:  # a multi-turn conversation of its own: its history, then the last user message
            flattened += 1
            row["messages"] = [{"role": role, "content": content} for role, content in rest[:-1]]
        row["input"] = rest[-1][1]
        row["reference"] = ideals
        rows.append(row)
    multiple = sum(len(r["reference"]) > 1 for r in rows)
    if multiple:
        notes.append(f"{multiple} of {len(rows)} samples have several ideal answers, so every reference is a list; "
                     "an answer matching any one of its ideal answers counts.")
    else:
        for r in rows:
            r["reference"] = r["reference"][0]
    if system_parts:
        notes.append("The system message shared by every sample is the task's system prompt.")
    if few_shot:
        notes.append(f"The user/assistant turns shared by every sample are the task's {len(few_shot)} few-shot "
                     f"example{'s' if len(few_shot) > 1 else ''}.")
    if varying_system:
        if all(r["system"] for r in rows):
            fields.insert(0, "system")
        notes.append("System messages differ between samples: each example keeps its own in the `system` field.")
    if flattened:
        notes.append(f"{flattened} sample(s) hold a conversation of several turns after the shared part; its "
                     "earlier turns are the example's chat history (`messages`), sent before its last user "
                     "message (`input`).")
    system = "\n\n".join(literal(s) for s in system_parts)
    if varying_system:
        system = (system + "\n\n" if system else "") + "{{ system }}"
    metric_entry = {**metric}
    return ImportedTask(
        name=name, source=path, source_format="OpenAI Evals samples JSONL", rows=rows, fields=fields,
        user="{{ input }}", system=system, few_shot=few_shot, metrics=[metric_entry],
        pass_rule={metric_entry["name"]: 1.0}, notes=notes,
        description=f"Imported from the OpenAI Evals samples {path.name} (eval class {eval_class}).",
    )

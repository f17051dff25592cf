"""`evals optimize`: prompt search on the task's train split, its evaluations through the runner.

split.py (train.jsonl -> search and dev parts; the golden set is never read here), candidates.py (the seed and
its few-shot variants: bootstrapped, random, retrieved), search.py (a candidate scored on a part as a stored
run, within the search's calls), rewrite.py (instruction rewrites by a proposer model, driven by gepa),
ledger.py (the optimisation, its runs and proposals in the run store). Selection and the golden figure are
evals.analyse.optimize's.
"""

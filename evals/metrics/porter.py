"""The Porter stemmer as rouge-score runs it: nltk's PorterStemmer in its default mode (NLTK_EXTENSIONS), ported.

rouge-score stems with `nltk.stem.porter.PorterStemmer()`, and importing it imports nltk whole (about 1.3 s);
this module is the same algorithm in plain Python (nltk is the tests' oracle). Porter, "An algorithm for
suffix stripping", Program 14.3 (1980), with Martin Porter's and nltk's extensions: the irregular forms,
`ies`/`ied` on four-letter words, `y -> i` only after a consonant, `alli` first, `fulli` and `logi`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

_VOWELS = frozenset("aeiou")
_IRREGULAR = {"skies": "sky", "sky": "sky", "dying": "die", "lying": "lie", "tying": "tie", "news": "news",
              "innings": "inning", "inning": "inning", "outings": "outing", "outing": "outing",
              "cannings": "canning", "canning": "canning", "howe": "howe", "proceed": "proceed",
              "exceed": "exceed", "succeed": "succeed"}

Rule = tuple[str, str, Callable[[str], bool] | None]  # (suffix, replacement, condition on the stem)


def _consonants(word: str) -> list[bool]:
    """Whether each letter is a consonant: not a vowel, and a `y` only where the letter before is a vowel."""
    flags: list[bool] = []
    for ch in word:
        flags.append(ch not in _VOWELS and (ch != "y" or not flags or not flags[-1]))
    return flags


def _measure(stem: str) -> int:
    """m in [C](VC){m}[V]: how many vowel-to-consonant turns."""
    flags = _consonants(stem)
    return sum(1 for before, now in zip(flags, flags[1:]) if now and not before)


def _positive(stem: str) -> bool:
    return _measure(stem) > 0


def _above_one(stem: str) -> bool:
    return _measure(stem) > 1


def _has_vowel(stem: str) -> bool:
    return not all(_consonants(stem))


def _ends_double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _consonants(word)[-1]


def _ends_cvc(word: str) -> bool:
    """*o: consonant-vowel-consonant, the last not w, x or y (nltk: also a two-letter vowel-consonant word)."""
    flags = _consonants(word)
    if len(word) >= 3:
        return flags[-3] and not flags[-2] and flags[-1] and word[-1] not in "wxy"
    return len(word) == 2 and not flags[0] and flags[1]


def _apply(word: str, rules: list[Rule]) -> str:
    """The first rule whose suffix the word ends with decides: replaced if its condition holds, else unchanged."""
    for suffix, replacement, condition in rules:
        if word.endswith(suffix):
            stem = word[:len(word) - len(suffix)]
            return stem + replacement if condition is None or condition(stem) else word
    return word


def _step1a(word: str) -> str:
    if word.endswith("ies") and len(word) == 4:
        return word[:-3] + "ie"
    return _apply(word, [("sses", "ss", None), ("ies", "i", None), ("ss", "ss", None), ("s", "", None)])


def _step1b(word: str) -> str:
    if word.endswith("ied"):
        return word[:-3] + ("ie" if len(word) == 4 else "i")
    if word.endswith("eed"):
        return word[:-1] if _positive(word[:-3]) else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[:-len(suffix)]):
            stem = word[:-len(suffix)]
            break
    else:
        return word
    if stem.endswith(("at", "bl", "iz")):
        return stem + "e"
    if _ends_double_consonant(stem):
        return stem[:-1] if stem[-1] not in "lsz" else stem
    return stem + "e" if _measure(stem) == 1 and _ends_cvc(stem) else stem


def _step1c(word: str) -> str:
    return _apply(word, [("y", "i", lambda stem: len(stem) > 1 and _consonants(stem)[-1])])


_STEP2: list[Rule] = [(suffix, replacement, _positive) for suffix, replacement in (
    ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"), ("bli", "ble"),
    ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"), ("ization", "ize"), ("ation", "ate"),
    ("ator", "ate"), ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous"), ("aliti", "al"),
    ("iviti", "ive"), ("biliti", "ble"), ("fulli", "ful"))]


def _step2(word: str) -> str:
    if word.endswith("alli") and _positive(word[:-4]):
        return _step2(word[:-4] + "al")
    # the l of logi -> log stays with the stem, so that geo-, theo- work as archaeo-, philo- do
    return _apply(word, [*_STEP2, ("logi", "log", lambda stem: _positive(word[:-3]))])


_STEP3: list[Rule] = [("icate", "ic", _positive), ("ative", "", _positive), ("alize", "al", _positive),
                      ("iciti", "ic", _positive), ("ical", "ic", _positive), ("ful", "", _positive),
                      ("ness", "", _positive)]
_STEP4: list[Rule] = [(suffix, "", _above_one) for suffix in (
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent")]
_STEP4 += [("ion", "", lambda stem: _above_one(stem) and stem[-1] in "st")]
_STEP4 += [(suffix, "", _above_one) for suffix in ("ou", "ism", "ate", "iti", "ous", "ive", "ize")]


def _step5(word: str) -> str:
    if word.endswith("e"):
        m = _measure(word[:-1])
        if m > 1 or m == 1 and not _ends_cvc(word[:-1]):
            word = word[:-1]
    return word[:-1] if word.endswith("ll") and _above_one(word[:-1]) else word


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Porter stem of `word` (lowercased), as nltk's `PorterStemmer().stem(word)`."""
    lowered = word.lower()
    if lowered in _IRREGULAR:
        return _IRREGULAR[lowered]
    if len(word) <= 2:
        return lowered
    for step in (_step1a, _step1b, _step1c, _step2, lambda w: _apply(w, _STEP3), lambda w: _apply(w, _STEP4)):
        lowered = step(lowered)
    return _step5(lowered)

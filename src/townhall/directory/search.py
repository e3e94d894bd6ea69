"""Finding a service by the words a resident types: ranked, typo-tolerant, with synonyms.

A city's directory holds tens to a few hundred services, so the index is built in Python from
the rows on each search (about a millisecond for 300 services) instead of living in a search
server or in backend-specific full-text tables. Service keywords are the synonyms: "hole in road"
finds pothole repair because it is one of its keywords.

Ranking: every query word is matched against each field's words, exactly, as a prefix (while
typing) or within a small edit distance (typos: one edit for words of 4-7 letters, two for
longer ones). A match counts its field's weight times how rare the word is (inverse document
frequency), times 1 for exact, 0.8 for prefix and 0.6 for a typo. A service must match at least
half of the meaningful words.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "at",
        "be",
        "can",
        "do",
        "for",
        "from",
        "get",
        "how",
        "i",
        "in",
        "is",
        "it",
        "me",
        "my",
        "need",
        "of",
        "on",
        "or",
        "the",
        "to",
        "want",
        "what",
        "where",
        "with",
        "you",
        "your",
    }
)
FIELD_WEIGHTS = {"name": 3.0, "keywords": 2.5, "terms": 1.5, "description": 1.0}


def normalise(text: str) -> str:
    """Lower case, accents removed (café = cafe)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def stem(word: str) -> str:
    """A light English stem: plurals and -ing, enough for "licenses" to find "license"."""
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)] + keep
    return word


def words(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(normalise(text))]


def query_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS][:20]


def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance, or `limit + 1` once it is
    clear the distance is above `limit` (keeps the check cheap)."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def typo_budget(word: str) -> int:
    if len(word) <= 3:
        return 0
    return 1 if len(word) <= 7 else 2


@dataclass(frozen=True)
class Document:
    key: str
    fields: dict[str, str]


@dataclass(frozen=True)
class Hit:
    key: str
    score: float
    matched: tuple[str, ...]


def rank(documents: Sequence[Document], query: str, *, limit: int = 1000) -> list[Hit]:
    """Documents matching `query`, best first. An empty query matches nothing."""
    wanted = query_words(query)
    if not wanted or not documents:
        return []
    indexed = [
        (doc, {name: set(words(text)) for name, text in doc.fields.items()}) for doc in documents
    ]
    vocabulary: dict[str, int] = {}
    for _, fields in indexed:
        for term in set().union(*fields.values()):
            vocabulary[term] = vocabulary.get(term, 0) + 1
    total = len(documents)
    # For each query word, the vocabulary words it stands for and how well.
    expansions = [
        _expand(word, vocabulary, last=i == len(wanted) - 1) for i, word in enumerate(wanted)
    ]
    needed = max(1, math.ceil(len(wanted) / 2))
    hits = []
    for doc, fields in indexed:
        score = 0.0
        matched = []
        for word, candidates in zip(wanted, expansions, strict=True):
            best = 0.0
            for term, quality in candidates:
                idf = math.log(1 + total / vocabulary[term])
                for name, terms in fields.items():
                    if term in terms:
                        best = max(best, FIELD_WEIGHTS.get(name, 1.0) * quality * idf)
            if best:
                score += best
                matched.append(word)
        if len(matched) >= needed:
            # Services whose name holds every query word come first.
            if all(any(t in fields.get("name", set()) for t, _ in c) for c in expansions):
                score *= 1.5
            hits.append(Hit(doc.key, round(score, 4), tuple(matched)))
    hits.sort(key=lambda h: (-h.score, h.key))
    return hits[:limit]


def _expand(word: str, vocabulary: dict[str, int], *, last: bool) -> list[tuple[str, float]]:
    found: dict[str, float] = {}
    if word in vocabulary:
        found[word] = 1.0
    # A word the directory knows is taken as typed: typos are only looked for in unknown words.
    budget = 0 if word in vocabulary else typo_budget(word)
    for term in vocabulary:
        if term == word:
            continue
        if (last or len(word) >= 4) and term.startswith(word) and len(word) >= 2:
            found[term] = max(found.get(term, 0), 0.8)
        elif budget and edit_distance(word, term, budget) <= budget:
            found[term] = max(found.get(term, 0), 0.6)
    return list(found.items())


def suggestions(documents: Iterable[Document], query: str) -> list[str]:
    """Corrected spellings of the query's words, for a "did you mean" line."""
    vocabulary: dict[str, int] = {}
    for doc in documents:
        for text in doc.fields.values():
            for w in _WORD.findall(normalise(text)):
                vocabulary[w] = vocabulary.get(w, 0) + 1
    corrected = []
    changed = False
    for word in _WORD.findall(normalise(query)):
        if word in vocabulary or word in STOPWORDS or not typo_budget(word):
            corrected.append(word)
            continue
        budget = typo_budget(word)
        close = [(edit_distance(word, t, budget), -n, t) for t, n in vocabulary.items()]
        close = [c for c in close if c[0] <= budget]
        if close:
            corrected.append(min(close)[2])
            changed = True
        else:
            corrected.append(word)
    return [" ".join(corrected)] if changed else []

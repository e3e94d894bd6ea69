"""Scrubbing personal data out of residents' free text before it is shown publicly.

Residents write their phone number, email address, name, a neighbour's name or a car's plate
into descriptions. The public copy of a description has these replaced by markers such as
`[phone removed]`; the exact text stays private to staff. The rules are patterns and cues, not
a language model: emails and phone numbers by shape, plates after the word "plate", names after
the cues people use to introduce them ("my name is", "thanks,", a signature dash, "my neighbor",
a possessive "Ann Lee's house") and the resident's own name wherever it appears. Measured on the
demo city's planted personal data in `tests/test_service_requests.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

EMAIL_MARK: Final = "[email removed]"
PHONE_MARK: Final = "[phone removed]"
NAME_MARK: Final = "[name removed]"
PLATE_MARK: Final = "[plate removed]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(
    r"""
    (?<![\w/])(?:
        \+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}     # international
      | (?:\+?1[\s.-]?)?\(\d{3}\)\s?\d{3}[\s.-]?\d{4}           # (413) 555-0123
      | (?:\+?1[\s.-]?)?\d{3}[\s.-]\d{3}[\s.-]\d{4}             # 413-555-0123, 413.555.0123
      | \d{10,11}                                                # 4135550123
      | \d{3}-\d{4}                                              # 555-0123
    )(?![\w/])
    """,
    re.VERBOSE,
)
_PLATE = re.compile(
    r"(?i:\b(?:licen[cs]e\s+)?plate(?:\s+(?:number|no\.?|#))?\s*:?\s*#?\s*"
    r"|\bregistration\s+(?:number|no\.?|#)\s*:?\s*)"
    r"(?P<value>[A-Za-z0-9]{1,4}(?:[ -]?[A-Za-z0-9]{1,5})?)\b"
)

_WORD_CAP = r"[A-Z][a-z]*(?:['’]?[A-Z][a-z]+)*(?:-[A-Z][a-z]+)?"
_WORD_LOW = r"[a-z]+(?:['’-][a-z]+)?"
# Capitalised words that follow the cues without being names.
_NOT_NAMES: Final = frozenset(
    {
        "I",
        "The",
        "A",
        "An",
        "This",
        "That",
        "It",
        "We",
        "They",
        "He",
        "She",
        "You",
        "Please",
        "Thanks",
        "Thank",
        "Hello",
        "Hi",
        "Street",
        "Avenue",
        "Road",
        "City",
        "Town",
        "Not",
        "Just",
        "Also",
        "Sorry",
        "Sure",
        "Here",
        "There",
        "Again",
        "Today",
    }
)
_STREET_WORDS: Final = frozenset(
    {
        "street",
        "st",
        "avenue",
        "ave",
        "road",
        "rd",
        "lane",
        "ln",
        "drive",
        "dr",
        "boulevard",
        "blvd",
        "way",
        "court",
        "ct",
        "place",
        "pl",
        "park",
        "square",
        "terrace",
        "circle",
        "highway",
        "hall",
        "center",
        "centre",
        "school",
        "library",
        "church",
        "bridge",
        "river",
        "market",
        "store",
        "office",
    }
)
_FOLLOWERS_LOW = r"(?=\s*[(,.;:!?]|\s*$|\s+(?:and|from|at|here|call|phone|says|said)\b)"


def _cue_patterns(word: str, low: bool) -> list[re.Pattern[str]]:
    name = rf"(?P<name>{word}(?:\s+{word})?)"
    follow = _FOLLOWERS_LOW if low else r"(?![A-Za-z])"
    patterns = [
        rf"(?i:\b(?:my\s+name\s+is|my\s+name's|i\s+am|i'm|i’m|this\s+is)\s+){name}{follow}",
        rf"(?i:\b(?:thanks|thank\s+you|regards|cheers|sincerely|best)\s*,?\s+){name}"
        r"(?=\s*[(,.;:!?]|\s*$)",
        rf"(?:^|\s)(?:-{{1,2}}|–|—)\s*{name}\s*(?:\(|$)",
        rf"(?i:\b(?:neighbou?r|landlord|tenant|mr\.?|mrs\.?|ms\.?|dr\.?)\s+){name}{follow}",
        rf"(?i:\b(?:ask\s+for|contact|call)\s+){name}(?=\s+(?i:at|on)\b|\s*[,.;:]\s*\d)",
    ]
    compiled = [re.compile(pattern) for pattern in patterns]
    if not low:
        compiled.append(_POSSESSIVE)
    return compiled


# Two capitalised words and a possessive: "It's Ann Lee's house".
_POSSESSIVE: Final = re.compile(rf"\b(?P<name>{_WORD_CAP}\s+{_WORD_CAP})(?=['’]s\b)")
_CUES_CAP: Final = _cue_patterns(_WORD_CAP, low=False)
# Every name rule needs one of these substrings: most texts are passed over with a few `in`
# tests (a regex alternation of the same words costs ten times more).
_CUE_WORDS: Final = (
    "name", "i am", "i'm", "i’m", "this is", "thank", "regards", "cheers", "sincerely", "best",
    "neighbo", "landlord", "tenant", "mr", "ms", "dr", "ask for", "contact", "call",
    "-", "–", "—", "'s", "’s",
)  # fmt: skip
_CUES_LOW: Final = _cue_patterns(_WORD_LOW, low=True)
_LOW_STOP: Final = frozenset(
    {
        "not",
        "sure",
        "going",
        "here",
        "there",
        "the",
        "a",
        "an",
        "so",
        "very",
        "really",
        "just",
        "still",
        "also",
        "again",
        "writing",
        "calling",
        "reporting",
        "worried",
        "tired",
        "done",
        "back",
        "home",
        "it",
        "is",
        "was",
        "has",
        "and",
        "to",
        "in",
        "on",
        "at",
        "for",
        "of",
        "you",
        "all",
        "everyone",
        "team",
        "said",
        "says",
    }
)


def _looks_like_name(candidate: str, low: bool, *, place_like: bool) -> bool:
    words = candidate.split()
    if not words or len(words[0]) < 2:
        return False
    if low:
        return not any(word in _LOW_STOP for word in words)
    if words[0] in _NOT_NAMES:
        return False
    # "Elm Street's drain" is a place; after a cue ("Thanks, Ann Hall") a surname may be too.
    return not (place_like and words[-1].lower().strip(".") in _STREET_WORDS)


def _replace_names(text: str, patterns: Iterable[re.Pattern[str]], low: bool) -> str:
    for pattern in patterns:
        pieces: list[str] = []
        last = 0
        for match in pattern.finditer(text):
            candidate = match.group("name")
            place_like = pattern is _POSSESSIVE
            if not _looks_like_name(candidate, low, place_like=place_like):
                continue
            start, end = match.span("name")
            pieces.append(text[last:start])
            pieces.append(NAME_MARK)
            last = end
        if pieces:
            pieces.append(text[last:])
            text = "".join(pieces)
    return text


def _plate_mark(match: re.Match[str]) -> str:
    value = match.group("value")
    if not any(char.isdigit() for char in value):  # "plate on the door" is no plate number
        return match.group(0)
    return match.group(0)[: match.start("value") - match.start(0)] + PLATE_MARK


def scrub_personal_data(text: str | None, *, known_names: Iterable[str | None] = ()) -> str:
    """The text with emails, phone numbers, plates and names replaced by markers.

    `known_names` (the resident's own name, staff names) are removed wherever they appear,
    in any case. Idempotent: scrubbing a scrubbed text changes nothing. `None` gives "".
    """
    if not text:
        return ""
    text = _EMAIL.sub(EMAIL_MARK, text)
    text = _PLATE.sub(_plate_mark, text)
    text = _PHONE.sub(PHONE_MARK, text)
    lowered = text.lower()
    for known in known_names:
        parts = (known or "").split()
        if not parts or len("".join(parts)) < 3 or parts[0].lower() not in lowered:
            continue  # the cheap test first: compiling a pattern per name is what costs
        pattern = r"\b" + r"\s+".join(re.escape(part) for part in parts) + r"\b"
        text = re.sub(pattern, NAME_MARK, text, flags=re.IGNORECASE)
    lowered = " ".join(text.lower().split())  # "thank  you" has the cue "thank you" too
    if not any(word in lowered for word in _CUE_WORDS):
        return text
    low = text == text.lower()
    return _replace_names(text, _CUES_LOW if low else _CUES_CAP, low)


def contains_contact_details(text: str | None) -> bool:
    """Whether the text holds an email address or a phone number (a cheap pre-check)."""
    return bool(text) and bool(_EMAIL.search(text or "") or _PHONE.search(text or ""))

"""Scrubbing personal data out of free text before it joins an open dataset.

Two stages. First the service-request slice's own scrubber (`scrub_personal_data`: email
addresses, phone numbers by shape, licence plates after the word "plate", names after the cues
people use to introduce them, and the resident's own name wherever it appears). Then what an
open dataset needs on top, all offline:

- IBAN-like account numbers (two letters, two check digits, 11-30 letters and digits, spaced
  or not), whether or not the checksum holds: a mistyped IBAN is still somebody's account;
- payment card numbers (13-19 digits, grouped or not, passing the Luhn check);
- national identifiers: US SSNs (123-45-6789), UK National Insurance numbers, passport-like
  letter-and-digit codes, any number after a cue such as "ID", "SSN", "passport", "licence
  number", "account", and any unbroken run of 8 or more digits;
- phone numbers the first stage's shapes miss, found by Google's libphonenumber
  (`phonenumbers`), international and national formats;
- street addresses with a house number ("12 Elm Street", "12B Oak Ave, Apt 4"), flats and
  units ("apartment 4B"), and PO boxes: they place a person more precisely than the published,
  generalised location;
- personal names by a gazetteer of first names in many languages taken from Faker's locale
  data: a known first name followed by a capitalised word ("Kwame Mensah"), or a known first
  name on its own inside a sentence, unless it is also a common word ("Will", "Grace") or
  names a place ("Lincoln Avenue").

Each find is replaced by a marker such as `[iban removed]`. Recall and precision are measured
on a labelled corpus in `tests/data/pii_corpus.jsonl` by `tests/test_privacy_scrubber.py`,
and the numbers are written down in docs/privacy.md.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Final

import phonenumbers

from townhall.service_requests.privacy import scrub_personal_data

# What tests/test_privacy_scrubber.py measured (it fails if these drift from the measurement),
# quoted in every privacy report.
MEASURED: Final = {
    "corpus": "tests/data/pii_corpus.jsonl (390 texts, tuned on)",
    "token_recall": 0.999,
    "token_precision": 0.997,
    "holdout": "tests/data/pii_corpus_holdout.jsonl (60 texts, never tuned on)",
    "holdout_token_recall": 0.897,
    "holdout_token_precision": 0.981,
}
MARKS: Final = {
    "plate": "[plate removed]",
    "iban": "[iban removed]",
    "card": "[card removed]",
    "id": "[id removed]",
    "phone": "[phone removed]",
    "address": "[address removed]",
    "name": "[name removed]",
}
FIRST_STAGE_MARKS: Final = {
    "plate": "[plate removed]",
    "email": "[email removed]",
    "phone": "[phone removed]",
    "name": "[name removed]",
}

# Country, check digits, then groups of four; after the first group (a bank code may be all
# letters) each group holds a digit, so the words after an IBAN are never taken into it.
_IBAN: Final = re.compile(
    r"(?i:\b[A-Z]{2}\d{2}[ ]?[A-Z0-9]{4}(?:[ ]?(?=[A-Z]{0,3}\d)[A-Z0-9]{4}){1,7}"
    r"(?:[ ]?\d{1,3}|(?<=\w)[A-Z0-9]{1,3})?\b)"
)
# National formats with a trunk 0 ("020 7946 0958", "0612 345678") that a US-region parse
# does not see.
_TRUNK_PHONE: Final = re.compile(r"(?<![\w+])0\d{1,4}[ -]\d{3,4}(?:[ -]\d{3,4})?(?![\w-])")
_PLATE_TAIL: Final = re.compile(r"(?<=\[plate removed\])[ -](?=[A-Z0-9]{0,3}\d)[A-Z0-9]{1,4}\b")
_NAME_TAIL: Final = re.compile(
    r"(?<=\[name removed\])\s+(?P<value>(?:[A-Z][a-z]*['’-])?[A-Z][a-z]+(?:-[A-Z][a-z]+)?)\b"
)
_CARD: Final = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN: Final = re.compile(r"(?<![\d-])\d{3}[- ]\d{2}[- ]\d{4}(?![\d-])")
_NINO: Final = re.compile(r"\b[A-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b")
# A letter or two and 6-9 digits: passports, driving licences, many national ID cards.
_LETTER_CODE: Final = re.compile(r"\b[A-Z]{1,2}-?\d{6,9}\b")
_LONG_DIGITS: Final = re.compile(r"(?<![\d.,])\d{8,}(?![\d.,])")
_ID_CUE: Final = re.compile(
    r"(?i:\b(?:ssn|social\s+security(?:\s+(?:number|no\.?|#))?|national\s+(?:id|insurance)"
    r"(?:\s+(?:number|no\.?|card))?|id\s+(?:number|no\.?|card|#)|id|passport(?:\s+(?:number|"
    r"no\.?|#))?|(?:driver'?s\s+)?licen[cs]e\s+(?:number|no\.?|#)|account\s+(?:number|no\.?|#)"
    r"|tax\s+(?:id|number)|customer\s+(?:number|no\.?))\s*(?:is|:|#)?\s*)"
    r"(?P<value>[A-Za-z]{0,3}[- ]?\d[\dA-Za-z -]{3,20}\d)"
)
_STREET_SUFFIX: Final = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Way|Court|Ct|Place|Pl|"
    r"Terrace|Ter|Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Row|Alley|Trail|Crescent|Close)"
)
_UNIT: Final = (
    r"(?:,?\s*(?:Apt|Apartment|Unit|Suite|Ste|Flat|Fl|Floor|#)\.?\s*#?\s*[A-Za-z0-9-]{1,6})?"
)
_ADDRESS: Final = re.compile(
    r"(?<![\w/])\d{1,6}[A-Za-z]?(?:-\d{1,4})?\s+(?:[NSEW]\.?\s+)?"
    r"(?:(?:[A-Z][a-z']+|\d{1,3}(?:st|nd|rd|th))\s+){1,3}" + _STREET_SUFFIX + r"\b" + _UNIT,
)
_ADDRESS_LOWER: Final = re.compile(
    r"(?<![\w/])\d{1,6}[a-z]?\s+(?:[a-z']+\s+){1,3}"
    + _STREET_SUFFIX.lower()
    + r"\b"
    + _UNIT.lower()
)
_UNIT_ALONE: Final = re.compile(
    r"(?i:\b(?:apt|apartment|unit|flat|suite)\.?\s*#?\s*)(?:\d{1,5}[A-Za-z]?|[A-Za-z]\d{0,4})\b"
)
_PO_BOX: Final = re.compile(r"(?i:\bP\.?\s?O\.?\s+Box\s+\d{1,6}\b)")
_CAP_WORD: Final = r"(?:[A-Z][a-z]+|[A-Z]['’](?=[A-Z]))(?:['’-]?[A-Z][a-z]+)*"
_NAME_PAIR: Final = re.compile(
    rf"\b(?P<first>{_CAP_WORD})\s+(?:(?P<middle>{_CAP_WORD}|[A-Z]\.)\s+)?(?P<last>{_CAP_WORD})\b"
)
# A capitalised word or two after a cue that introduces a person: gazetteer or not.
_CUED_NAME: Final = re.compile(
    r"(?i:\b(?:contact|ask\s+for|wife|husband|son|daughter|friend|manager|neighbou?r|landlord"
    r"|owner|mr|mrs|ms|dr|my\s+name\s+is|i\s+am|this\s+is|thanks|thank\s+you|regards|cheers"
    r"|sincerely)\b\.?\s*[,:]?\s+|(?:^|\s)(?:--?|—)\s*)"
    rf"(?P<name>{_CAP_WORD}(?:\s+{_CAP_WORD})?)"
)
_CAPITALISED: Final = re.compile(rf"\b{_CAP_WORD}\b")
_MARK_RE: Final = re.compile(r"\[[a-z]+ removed\]")

# First names that are also everyday words, months, or words that name places and things:
# alone, they are not taken for names (a following capitalised surname still is).
_AMBIGUOUS_TEXT: Final = """
    Will May June April August Bill Mark Rose Grace Hope Joy Faith Dawn Sunny Art Chase
    Frank Jack Ray Rich Rob Sky Summer Winter Autumn Page Penny Pat Sandy Amber Crystal Ruby
    Pearl Jade Holly Ivy Lily Daisy Iris Heather Violet Olive Hazel Willow Aspen Laurel
    Rowan Cliff Dale Glen Wood Forrest Brook River Lake Storm Sterling Hunter Mason Cooper
    Carter Parker Miles Price Young King Hill Park Don Guy Lane Major Prince Justice Trinity
    Harmony Destiny Star Angel Christian Lincoln Madison Jefferson Jackson Washington
    Franklin Hamilton Warren Grant Monroe Adams Sumner Everett Dwight Whitney Emerson Tyler
    Taylor Jordan Kent Vernon Ford Cameron Main Lee Worth Bishop Cedar Maple Oak Elm Pine
    Birch Spruce Poplar Linden Sage Clay Stone Rock Bay Bell Bond Cash Chance Gay Honey
    Marsh Moss Reed Rush Shade Sol Sonny Tag Tiny True Van Victory Wade West Winston Case
    Harbor Harbour Haven Cole North South East Mercy Precious Blessing Comfort Patience
    Prosperity Unity Liberty Felicity Sunday Monday Friday Tuesday Wednesday Thursday
    Saturday Noel Christmas Easter Happy Lucky Best Bliss Bless Sweet Sugar Candy Cherry
    Apple Berry Ginger Pepper Basil Clover Fern Jasmine Lavender Poppy Primrose Saffron
    Flora Fauna Mina Nelly Rocky Rusty Dusty Buddy Trash Garbage Bin Light Pole Sign Water
    Power Road Street Avenue Green White Black Brown Gray Grey Red Blue Orange Gold Silver
    Ash Dell Drew Gene Hale Ward Wells Banks Burns Fields Lamb Rice Sharp Short Long Little
    Small Strong Rivers Brooks Woods Hills Lakes Dean Hall Church School Library Center
    Office City Town Council Police Fire Transit Metro Bus Parks Field Garden Market Bridge
    Station Square Plaza Court Mall Tower Museum Hospital Riverton Riverside Millbrook Cedar
    Kingsbury Pinecrest Fairmount Brookside Lakeview Ironworks Harbor Point Old New Please
    Thanks Thank Hello Hi Dear Sir Madam Team Yes No Not Just Also Sorry Sure Here There
    Again Today Tomorrow Yesterday Tonight Morning Evening Night Ok Okay Kind Regards Cheers
    Best Urgent Help Issue Problem Report Request Pothole Graffiti Noise Snow Ice Tree Trees
    Leaf Leaves Dog Cat Car Truck Van Bike Alley Sidewalk
"""
_AMBIGUOUS: Final = frozenset(_AMBIGUOUS_TEXT.split())
_PLACE_FOLLOWERS: Final = re.compile(
    r"(?:\s+[A-Z][a-z]+)?(?:\s+(?:Jr|Sr)\.?)?\s+(?:"
    + _STREET_SUFFIX
    + r"|Park|Hall|School|Library|Center|Centre|Church|Bridge|"
    r"Square|Plaza|Heights|Hill|Grove|Point|Station|Market|Garden|Gardens|Field|Fields|"
    r"Street|Mall|Hospital|Museum|Building|Tower|Apartments|Elementary|Middle|High|College|"
    r"University|Department|Office|Club|Store|Shop|Cafe|Restaurant|Bank|Pharmacy|Clinic)\b"
)


@cache
def first_names() -> frozenset[str]:
    """First names of every Faker locale, in Latin letters (about 16,000)."""
    import faker.providers.person as person_providers

    names: set[str] = set()
    for module in pkgutil.iter_modules(person_providers.__path__):
        provider = importlib.import_module(f"{person_providers.__name__}.{module.name}").Provider
        for attribute in dir(provider):
            if not (attribute.startswith("first_") and "name" in attribute) or "pairs" in attribute:
                continue
            value = getattr(provider, attribute)
            if isinstance(value, dict):
                value = value.keys()
            if not isinstance(value, list | tuple | set | frozenset | type({}.keys())):
                continue
            for name in value:
                if isinstance(name, str) and name.isascii() and name.isalpha() and len(name) > 1:
                    names.add(name[0].upper() + name[1:].lower())
    return frozenset(names)


@dataclass
class ScrubResult:
    text: str
    found: Counter[str] = field(default_factory=Counter)


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


class _Replacer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.found: Counter[str] = Counter()

    def sub(
        self,
        pattern: re.Pattern[str],
        kind: str,
        group: str | int = 0,
        check: Callable[[re.Match[str]], bool] | None = None,
    ) -> None:
        """Replace every match (or its `group`) that `check` accepts with the kind's marker;
        matches overlapping an earlier replacement or a marker are left alone."""
        pieces: list[str] = []
        last = 0
        for match in pattern.finditer(self.text):
            start, end = match.span(group)
            if start < last or (check is not None and not check(match)):
                continue
            if _MARK_RE.search(self.text[start:end]):
                continue
            pieces.append(self.text[last:start])
            pieces.append(MARKS[kind])
            self.found[kind] += 1
            last = end
        if pieces:
            pieces.append(self.text[last:])
            self.text = "".join(pieces)

    def replace_spans(self, spans: Iterable[tuple[int, int]], kind: str) -> None:
        pieces: list[str] = []
        last = 0
        for start, end in sorted(spans):
            if start < last:
                continue
            pieces.append(self.text[last:start])
            pieces.append(MARKS[kind])
            self.found[kind] += 1
            last = end
        if pieces:
            pieces.append(self.text[last:])
            self.text = "".join(pieces)


def _is_surname(match: re.Match[str]) -> bool:
    """A capitalised word right after a removed name is its surname, unless it starts the
    next sentence ("[name removed] Call me on ...")."""
    value = match.group("value")
    if value in _SENTENCE_WORDS or value in _AMBIGUOUS:
        return False
    rest = match.string[match.end() :]
    return (
        not rest.strip()
        or bool(re.match(r"\s*[(,.;:!?]", rest))
        or bool(_VERBS_AFTER_NAME.match(match.string, match.end()))
    )


def _is_card(match: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", match.group(0))
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _is_iban(match: re.Match[str]) -> bool:
    body = match.group(0).replace(" ", "")
    # At least a few digits after the check digits: "AB12 WORD WORD ..." in capitals is no IBAN.
    return 15 <= len(body) <= 34 and sum(ch.isdigit() for ch in body[4:]) >= 6


def _phones(text: str, region: str) -> list[tuple[int, int]]:
    spans = []
    for match in phonenumbers.PhoneNumberMatcher(
        text, region, leniency=phonenumbers.Leniency.VALID
    ):
        spans.append((match.start, match.end))
    return spans


def _sentence_start(text: str, index: int) -> bool:
    before = text[:index].rstrip()
    return not before or before[-1] in ".!?:;\n\"'(" or before.endswith("]")


def _names(text: str, known_first: frozenset[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    end_of_last = 0
    for cued in _CUED_NAME.finditer(text):
        span = _cued_span(text, cued)
        if span is not None:
            spans.append(span)
    claimed = {i for start, end in spans for i in range(start, end)}
    for word in _CAPITALISED.finditer(text):
        if word.start() < end_of_last or word.start() in claimed:
            continue
        pair = _NAME_PAIR.match(text, word.start())
        if pair is not None:
            span = _name_pair_span(text, pair, known_first)
            if span is not None:
                spans.append(span)
                end_of_last = span[1]
                continue
            if _names_a_place(text, pair):
                end_of_last = pair.end()
                continue
        if _is_lone_first_name(text, word, known_first):
            spans.append(word.span())
            end_of_last = word.end()
    spans.extend(_lowercase_names(text, known_first))
    return spans


def _names_a_place(text: str, pair: re.Match[str]) -> bool:
    """ "Carlos Street", "Maria Sanchez Park", "Martin Luther King Jr. School"."""
    return bool(
        _PLACE_FOLLOWERS.match(text, pair.end("first")) or _PLACE_FOLLOWERS.match(text, pair.end())
    )


def _cued_span(text: str, cued: re.Match[str]) -> tuple[int, int] | None:
    words = list(re.finditer(r"\S+", cued.group("name")))
    kept = []
    for word in words:
        if word.group(0) in _SENTENCE_WORDS or (word.group(0) in _AMBIGUOUS and not kept):
            break
        kept.append(word)
    if not kept:
        return None
    start = cued.start("name")
    end = start + kept[-1].end()
    if _PLACE_FOLLOWERS.match(text, end):
        return None
    return start, end


def _name_pair_span(
    text: str, pair: re.Match[str], known_first: frozenset[str]
) -> tuple[int, int] | None:
    first, last, middle = pair.group("first"), pair.group("last"), pair.group("middle")
    if _names_a_place(text, pair) or first in _SENTENCE_WORDS:
        return None
    if first not in known_first:
        # Not a known first name: still a name when two unknown capitalised words report
        # something ("Kateryna Gallagher reported it").
        if (
            middle is None
            and first not in _AMBIGUOUS
            and last not in _AMBIGUOUS | _SENTENCE_WORDS
            and _REPORTING_VERB.match(text, pair.end())
        ):
            return pair.span()
        return None
    if last in _SENTENCE_WORDS:
        # "Thanks, Clarence Nguyen Call me...": the third word starts the next sentence.
        if middle and middle not in _SENTENCE_WORDS and not middle.endswith("."):
            return pair.start(), pair.end("middle")
        return None
    if first in _AMBIGUOUS and last in _AMBIGUOUS:
        return None
    return pair.span()


def _is_lone_first_name(text: str, word: re.Match[str], known_first: frozenset[str]) -> bool:
    name = word.group(0)
    if name not in known_first or name in _AMBIGUOUS or name in _SENTENCE_WORDS:
        return False
    if _sentence_start(text, word.start()) and not _VERBS_AFTER_NAME.match(text, word.end()):
        return False
    return not _PLACE_FOLLOWERS.match(text, word.end())


def _lowercase_names(text: str, known_first: frozenset[str]) -> list[tuple[int, int]]:
    """Names written in lowercase: a word or two after a cue ("thanks, ana silva", "mrs.
    petrov"), or a known first name before a verb ("kofi says")."""
    spans = []
    position = 0
    while True:
        match = _LOWER_NAME.search(text, position)
        if match is None:
            return spans
        position = match.end("first")
        first = match.group("first")
        if first in _COMMON_WORDS or first.capitalize() in _AMBIGUOUS:
            continue
        cue = bool(_LOWER_CUE.search(text, 0, match.start()))
        # Without a cue, only a known first name that reports something ("kofi says");
        # "bird dead in the road" and "bradford way and main" are not people.
        if not cue and not (
            first.capitalize() in known_first
            and (
                _REPORTING_VERB.match(text, match.end("first"))
                or _REPORTING_VERB.match(text, match.end())
            )
        ):
            continue
        last = match.group("last")
        if not last or last in _COMMON_WORDS or last.capitalize() in _AMBIGUOUS:
            spans.append(match.span("first"))
        else:
            spans.append(match.span())
            position = match.end()


_LOWER_NAME: Final = re.compile(
    r"(?<![\w'’-])(?P<first>[a-z]{3,})(?:\s+(?P<last>[a-z]+(?:['’-][a-z]+)?))?(?![\w'’-])"
)
_LOWER_CUE: Final = re.compile(
    r"(?:\b(?:thanks|thank\s+you|regards|cheers|sincerely|best|name\s+is|i\s+am|i'm|this\s+is|"
    r"neighbou?r|landlord|tenant|owner|mr|mrs|ms|dr|contact|ask\s+for|ask|call|wife|husband|"
    r"son|daughter|friend|manager)\s*[,:.]?|--?|—)\s*$"
)
_COMMON_WORDS_TEXT: Final = """
    a an the and or but if of at by for with from to in on off out up down over under near
    is was are were be been being has have had do does did will would can could should may
    might must shall it its this that these those there here he she they we you i me my your
    his her their our them us who what when where why how not no yes so very too also just
    said says told called reported saw lives lived keeps left dumped agrees asked again
    please thanks today tomorrow yesterday street road avenue lane drive park hall school
    next door house home number since every about around after before while
"""
_COMMON_WORDS: Final = frozenset(_COMMON_WORDS_TEXT.split())
_REPORTING_VERB: Final = re.compile(
    r"\s+(?:reported|says|said|told|called|asked|saw|lives|complained|agrees|thinks|wants|"
    r"noticed|mentioned|from\s+number)\b"
)
# Capitalised words that start sentences, not names.
_SENTENCE_STARTERS: Final = """
    Mr Mrs Ms Dr Miss It Call Cost Route Outside Contact Tel Email Reply Please Refund My
    The This That There We I You He She They Thanks Regards About Zip Request Will Sent Send
    Order Passport Snow Water Trash Graffiti Someone Noise Big Dead Broken Leaves Permit
    Streetlight Hydrant Tree Apartment Flat Unit Suite Apt Mobile Phone Cell Fax Hi Hello
    Dear
"""
_SENTENCE_WORDS: Final = frozenset(
    {w.capitalize() for w in _COMMON_WORDS} | set(_SENTENCE_STARTERS.split())
)
_VERBS_AFTER_NAME: Final = re.compile(
    r"\s+(?:said|says|told|called|reported|asked|lives|lived|saw|is|was|has|had|and|from|"
    r"at|on|in|who|will|can|keeps|parks|left|dumped)\b"
)


def scrub_text(
    text: str | None,
    *,
    known_names: Iterable[str | None] = (),
    phone_region: str = "US",
) -> ScrubResult:
    """`text` with personal data replaced by markers, and how many of each kind were found.

    `known_names` (the resident's name, staff names) are removed wherever they appear.
    Idempotent: scrubbing scrubbed text finds nothing more. `None` gives "".
    """
    if not text:
        return ScrubResult("")
    first_pass = scrub_personal_data(text, known_names=known_names)
    replacer = _Replacer(first_pass)
    for kind, mark in FIRST_STAGE_MARKS.items():
        added = first_pass.count(mark) - text.count(mark)
        if added > 0:
            replacer.found[kind] += added
    replacer.sub(_IBAN, "iban", check=_is_iban)
    replacer.sub(_CARD, "card", check=_is_card)
    replacer.sub(_SSN, "id")
    replacer.sub(_NINO, "id")
    replacer.sub(_ID_CUE, "id", group="value")
    replacer.sub(_LETTER_CODE, "id")
    replacer.replace_spans(_phones(replacer.text, phone_region), "phone")
    replacer.sub(_TRUNK_PHONE, "phone")
    replacer.sub(_LONG_DIGITS, "id")
    replacer.sub(_ADDRESS, "address")
    replacer.sub(_ADDRESS_LOWER, "address")
    replacer.sub(_PO_BOX, "address")
    replacer.sub(_UNIT_ALONE, "address")
    replacer.sub(_PLATE_TAIL, "plate")
    replacer.replace_spans(_names(replacer.text, first_names()), "name")
    replacer.sub(_NAME_TAIL, "name", group="value", check=_is_surname)
    return ScrubResult(replacer.text, replacer.found)


def residual_personal_data(text: str) -> list[str]:
    """Kinds of personal data still detectable in `text` (for the privacy report's final
    check: should be empty for every published cell)."""
    again = scrub_text(text)
    return sorted(again.found)

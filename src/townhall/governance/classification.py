"""Classification of datasets and columns: public < internal < personal < sensitive.

- public: may be open data.
- internal: for the office's own use (never open, but not about people).
- personal: about an identifiable person (a name, a contact, an exact home location).
- sensitive: personal data of the special kinds (health, ethnicity, religion, beliefs, sexual
  life, criminal records, union membership) or a national identifier or bank account.

A dataset is as protected as its most protected column. A dataset with a personal or sensitive
column cannot be published as open data (visibility `public`). Column names that look personal
("email", "phone", "resident_name", "ssn") are classified by detection until someone declares
otherwise; declaring a detected column *less* protected needs `governance:manage` (a second
pair of eyes), while declaring it more protected needs only the right to edit the dataset.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Final

from townhall.governance.models import CLASSIFICATIONS

OPEN_DATA_BLOCKERS: Final = frozenset({"personal", "sensitive"})

# Whole words (split on _ - space and camelCase) that mark a column as personal or sensitive.
_SENSITIVE_WORDS: Final = frozenset(
    {
        "ssn", "nino", "passport", "iban", "bic", "swift", "tax_id", "taxid", "national_id",
        "nationalid", "health", "diagnosis", "disability", "medical", "ethnicity", "ethnic",
        "race", "religion", "religious", "sexual", "orientation", "criminal", "conviction",
        "union", "biometric", "genetic",
    }
)  # fmt: skip
_PERSONAL_WORDS: Final = frozenset(
    {
        "email", "e_mail", "phone", "telephone", "mobile", "fax", "firstname", "first_name",
        "lastname", "last_name", "surname", "fullname", "full_name", "forename", "address",
        "home_address", "birth", "birthday", "dob", "birthdate", "gender", "sex", "ip_address",
        "device_id", "account_id", "user_id", "username", "login", "plate", "licence_plate",
        "license_plate", "resident", "citizen", "applicant", "patient", "tenant",
    }
)  # fmt: skip
# "<who>_name" is a person's name; "park_name" or a bare "name" is a thing's.
_PERSON_PREFIXES: Final = frozenset(
    {
        "resident", "person", "citizen", "applicant", "contact", "owner", "tenant", "patient",
        "requester", "reporter", "caller", "user", "customer", "client", "first", "last",
        "full", "given", "family", "middle", "maiden", "nick", "staff", "employee", "officer",
    }
)  # fmt: skip
# Address columns of public places are not personal.
_PLACE_PREFIXES: Final = frozenset({"office", "site", "facility", "venue", "location", "stop"})


def _words(column: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", column)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def detect_column(column: str) -> str | None:
    """The classification a column's name suggests, or None when the name says nothing.

    Only personal and sensitive are ever suggested: a name cannot prove a column public.
    """
    words = _words(column)
    if not words:
        return None
    pairs = {f"{a}_{b}" for a, b in itertools.pairwise(words)}
    candidates = {"_".join(words), *words, *pairs}
    if candidates & _SENSITIVE_WORDS:
        return "sensitive"
    if "name" in words and words[0] in _PERSON_PREFIXES:
        return "personal"
    if words[0] in _PLACE_PREFIXES:
        return None
    if candidates & _PERSONAL_WORDS:
        return "personal"
    return None


def rank(classification: str) -> int:
    return CLASSIFICATIONS.index(classification)


def most_protected(levels: Iterable[str | None], default: str = "public") -> str:
    found = [level for level in levels if level]
    return max(found, key=rank) if found else default


def effective_columns(
    column_names: Iterable[str], declared: dict[str, str]
) -> dict[str, tuple[str, str]]:
    """Each column's classification and where it comes from: `declared`, `detected` or
    `default` (public)."""
    result: dict[str, tuple[str, str]] = {}
    for name in column_names:
        if name in declared:
            result[name] = (declared[name], "declared")
            continue
        detected = detect_column(name)
        result[name] = (detected, "detected") if detected else ("public", "default")
    return result

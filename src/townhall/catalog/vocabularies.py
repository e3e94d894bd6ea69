"""Controlled vocabularies: licences (SPDX / Open Definition), EU data themes, EU frequencies.

Kept in code, not fetched: nothing may download at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class License:
    id: str
    title: str
    url: str
    open_data: bool
    attribution: bool


LICENSES: dict[str, License] = {
    lic.id: lic
    for lic in [
        License(
            "CC0-1.0",
            "Creative Commons Zero 1.0",
            "https://creativecommons.org/publicdomain/zero/1.0/",
            True,
            False,
        ),
        License(
            "CC-BY-4.0",
            "Creative Commons Attribution 4.0",
            "https://creativecommons.org/licenses/by/4.0/",
            True,
            True,
        ),
        License(
            "CC-BY-SA-4.0",
            "Creative Commons Attribution Share-Alike 4.0",
            "https://creativecommons.org/licenses/by-sa/4.0/",
            True,
            True,
        ),
        License(
            "ODbL-1.0",
            "Open Data Commons Open Database License 1.0",
            "https://opendatacommons.org/licenses/odbl/1-0/",
            True,
            True,
        ),
        License(
            "ODC-By-1.0",
            "Open Data Commons Attribution License 1.0",
            "https://opendatacommons.org/licenses/by/1-0/",
            True,
            True,
        ),
        License(
            "PDDL-1.0",
            "Open Data Commons Public Domain Dedication and License 1.0",
            "https://opendatacommons.org/licenses/pddl/1-0/",
            True,
            False,
        ),
        License(
            "OGL-UK-3.0",
            "Open Government Licence v3.0",
            "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/",
            True,
            True,
        ),
        License(
            "DL-DE-BY-2.0",
            "Data licence Germany – attribution – version 2.0",
            "https://www.govdata.de/dl-de/by-2-0",
            True,
            True,
        ),
        License(
            "etalab-2.0",
            "Licence Ouverte / Open Licence 2.0",
            "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
            True,
            True,
        ),
        License(
            "US-PD",
            "U.S. Government Works (public domain)",
            "https://www.usa.gov/government-works",
            True,
            False,
        ),
        License("other-closed", "Not open: all rights reserved", "", False, True),
    ]
}

# EU Publications Office data-theme vocabulary.
THEMES: dict[str, str] = {
    "AGRI": "Agriculture, fisheries, forestry and food",
    "ECON": "Economy and finance",
    "EDUC": "Education, culture and sport",
    "ENER": "Energy",
    "ENVI": "Environment",
    "GOVE": "Government and public sector",
    "HEAL": "Health",
    "INTR": "International issues",
    "JUST": "Justice, legal system and public safety",
    "OP_DATPRO": "Provisional data",
    "REGI": "Regions and cities",
    "SOCI": "Population and society",
    "TECH": "Science and technology",
    "TRAN": "Transport",
}
THEME_BASE = "http://publications.europa.eu/resource/authority/data-theme/"

# EU Publications Office frequency vocabulary, with how long until the next update is due.
FREQUENCIES: dict[str, tuple[str, timedelta | None]] = {
    "CONT": ("Continuously updated", timedelta(days=1)),
    "HOURLY": ("Hourly", timedelta(hours=1)),
    "DAILY": ("Daily", timedelta(days=1)),
    "WEEKLY": ("Weekly", timedelta(weeks=1)),
    "BIWEEKLY": ("Every two weeks", timedelta(weeks=2)),
    "MONTHLY": ("Monthly", timedelta(days=31)),
    "BIMONTHLY": ("Every two months", timedelta(days=62)),
    "QUARTERLY": ("Quarterly", timedelta(days=92)),
    "ANNUAL_2": ("Twice a year", timedelta(days=183)),
    "ANNUAL": ("Annual", timedelta(days=366)),
    "BIENNIAL": ("Every two years", timedelta(days=731)),
    "TRIENNIAL": ("Every three years", timedelta(days=1096)),
    "IRREG": ("Irregular", None),
    "NEVER": ("Never", None),
    "UNKNOWN": ("Unknown", None),
}
FREQUENCY_BASE = "http://publications.europa.eu/resource/authority/frequency/"
# ISO 8601 durations for DCAT-US accrualPeriodicity.
FREQUENCY_ISO8601: dict[str, str] = {
    "CONT": "R/PT1S",
    "HOURLY": "R/PT1H",
    "DAILY": "R/P1D",
    "WEEKLY": "R/P1W",
    "BIWEEKLY": "R/P2W",
    "MONTHLY": "R/P1M",
    "BIMONTHLY": "R/P2M",
    "QUARTERLY": "R/P3M",
    "ANNUAL_2": "R/P6M",
    "ANNUAL": "R/P1Y",
    "BIENNIAL": "R/P2Y",
    "TRIENNIAL": "R/P3Y",
    "IRREG": "irregular",
}
# Grace before a dataset counts as late: a tenth of its period, at least an hour.
GRACE_FRACTION = 0.1

"""Opening hours without a database: cross-midnight, daylight saving, holidays, exceptions."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from townhall.directory import hours, search
from townhall.directory.hours import Calendar, ExceptionDay, WeeklyHours

NY = ZoneInfo("America/New_York")


def weekdays(opens: str, closes: str, days=range(5)) -> tuple[WeeklyHours, ...]:
    return tuple(
        WeeklyHours(d, time.fromisoformat(opens), time.fromisoformat(closes)) for d in days
    )


def local(*args: int, tz=NY) -> datetime:
    return datetime(*args, tzinfo=tz)


def test_open_and_closed_on_a_plain_day():
    cal = Calendar("America/New_York", weekdays("08:30", "16:30"))
    tuesday_noon = local(2026, 5, 5, 12, 0)
    state = hours.open_state(cal, tuesday_noon)
    assert state.is_open
    assert state.closes_at == local(2026, 5, 5, 16, 30)
    evening = hours.open_state(cal, local(2026, 5, 5, 17, 0))
    assert not evening.is_open
    assert evening.next_opens_at == local(2026, 5, 6, 8, 30)
    friday_night = hours.open_state(cal, local(2026, 5, 8, 20, 0))
    assert friday_night.next_opens_at == local(2026, 5, 11, 8, 30), "the weekend is skipped"


def test_closing_time_is_exclusive_and_opening_inclusive():
    cal = Calendar("America/New_York", weekdays("09:00", "17:00"))
    assert hours.open_state(cal, local(2026, 5, 5, 9, 0)).is_open
    assert not hours.open_state(cal, local(2026, 5, 5, 17, 0)).is_open


def test_lunch_break_is_two_intervals():
    cal = Calendar("America/New_York", weekdays("08:00", "12:00") + weekdays("13:00", "16:00"))
    lunch = hours.open_state(cal, local(2026, 5, 5, 12, 30))
    assert not lunch.is_open
    assert lunch.next_opens_at == local(2026, 5, 5, 13, 0)


def test_interval_crossing_midnight_is_open_after_midnight():
    # A night counter open Friday 22:00 to Saturday 02:00.
    cal = Calendar("Europe/Paris", (WeeklyHours(4, time(22), time(2)),))
    paris = ZoneInfo("Europe/Paris")
    saturday_1am = datetime(2026, 5, 9, 1, 0, tzinfo=paris)
    state = hours.open_state(cal, saturday_1am)
    assert state.is_open
    assert state.closes_at == datetime(2026, 5, 9, 2, 0, tzinfo=paris)
    assert not hours.open_state(cal, datetime(2026, 5, 9, 2, 30, tzinfo=paris)).is_open
    assert not hours.open_state(cal, datetime(2026, 5, 8, 21, 59, tzinfo=paris)).is_open


def test_adjacent_intervals_across_midnight_merge():
    cal = Calendar("UTC", (WeeklyHours(0, time(20), time(0)), WeeklyHours(1, time(0), time(4))))
    state = hours.open_state(cal, datetime(2026, 5, 4, 23, 0, tzinfo=UTC))
    assert state.closes_at == datetime(2026, 5, 5, 4, 0, tzinfo=UTC)


def test_daylight_saving_keeps_wall_clock_hours():
    # New York moves from EST (UTC-5) to EDT (UTC-4) on Sunday 8 March 2026.
    cal = Calendar("America/New_York", weekdays("09:00", "17:00"))
    before = hours.open_state(cal, datetime(2026, 3, 6, 13, 59, tzinfo=UTC))  # Fri 08:59 EST
    assert not before.is_open
    assert before.next_opens_at == datetime(2026, 3, 6, 14, 0, tzinfo=UTC)
    after = hours.open_state(cal, datetime(2026, 3, 9, 13, 0, tzinfo=UTC))  # Mon 09:00 EDT
    assert after.is_open
    assert after.closes_at == datetime(2026, 3, 9, 21, 0, tzinfo=UTC)


def test_night_interval_over_the_spring_forward_gap_is_an_hour_shorter():
    # Saturday 22:00 to Sunday 04:00 over 02:00 -> 03:00: five real hours, not six.
    cal = Calendar("America/New_York", (WeeklyHours(5, time(22), time(4)),))
    spans = hours.intervals(cal, date(2026, 3, 7), date(2026, 3, 7))
    assert len(spans) == 1
    start, end = spans[0]
    assert end - start == timedelta(hours=5)


def test_autumn_fall_back_interval_is_an_hour_longer():
    cal = Calendar("America/New_York", (WeeklyHours(5, time(22), time(4)),))
    start, end = hours.intervals(cal, date(2026, 10, 31), date(2026, 10, 31))[0]
    assert end - start == timedelta(hours=7)


def test_public_holiday_closes_and_names_itself():
    cal = Calendar(
        "America/New_York",
        weekdays("08:30", "16:30"),
        holiday_country="US",
        holiday_subdivision="MA",
    )
    memorial_day = local(2026, 5, 25, 10, 0)
    state = hours.open_state(cal, memorial_day)
    assert not state.is_open
    assert state.closed_reason == "holiday: Memorial Day"
    assert state.next_opens_at == local(2026, 5, 26, 8, 30)
    # Patriots' Day is a Massachusetts holiday, not a federal one.
    assert not hours.open_state(cal, local(2026, 4, 20, 10, 0)).is_open
    federal_only = Calendar("America/New_York", weekdays("08:30", "16:30"), holiday_country="US")
    assert hours.open_state(federal_only, local(2026, 4, 20, 10, 0)).is_open


def test_offices_that_ignore_holidays_stay_open():
    cal = Calendar(
        "America/New_York",
        weekdays("08:30", "16:30"),
        holiday_country="US",
        observes_public_holidays=False,
    )
    assert hours.open_state(cal, local(2026, 5, 25, 10, 0)).is_open


def test_exceptions_replace_weekly_hours_and_holidays():
    cal = Calendar(
        "America/New_York",
        weekdays("08:30", "16:30"),
        exceptions=(
            ExceptionDay(date(2026, 5, 5), date(2026, 5, 6), closed=True, note="Move"),
            ExceptionDay(date(2026, 5, 25), date(2026, 5, 25), False, time(10), time(12)),
        ),
        holiday_country="US",
    )
    closed = hours.open_state(cal, local(2026, 5, 5, 10, 0))
    assert not closed.is_open
    assert closed.closed_reason == "exception: Move"
    assert closed.next_opens_at == local(2026, 5, 7, 8, 30)
    # An exception on a holiday opens the office for its special hours.
    assert hours.open_state(cal, local(2026, 5, 25, 11, 0)).is_open
    assert not hours.open_state(cal, local(2026, 5, 25, 13, 0)).is_open


def test_weekly_rules_respect_their_validity():
    rows = [("MO,TU", time(9), time(12), date(2026, 6, 1), None)]
    cal = Calendar("UTC", tuple(hours.weekly_from_rows(rows)))
    assert not hours.open_state(cal, datetime(2026, 5, 25, 10, tzinfo=UTC)).is_open
    assert hours.open_state(cal, datetime(2026, 6, 1, 10, tzinfo=UTC)).is_open


def test_no_hours_means_never_opening():
    state = hours.open_state(Calendar("UTC", ()), datetime(2026, 5, 5, tzinfo=UTC))
    assert not state.is_open
    assert state.next_opens_at is None


def test_naive_now_and_unknown_zone_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        hours.open_state(Calendar("UTC", ()), datetime(2026, 5, 5))  # noqa: DTZ001
    with pytest.raises(ValueError, match="unknown time zone"):
        hours.zone("Mars/Olympus")


# Search ---------------------------------------------------------------------------------------


DOCS = [
    search.Document("passport", {"name": "Passport application", "keywords": "passport travel"}),
    search.Document(
        "bulky", {"name": "Bulky item pickup", "keywords": "bulky furniture mattress couch"}
    ),
    search.Document(
        "birth", {"name": "Birth certificate copy", "keywords": "vital records passport"}
    ),
    search.Document("pothole", {"name": "Pothole repair", "keywords": "hole in road crater"}),
]


def keys(query: str) -> list[str]:
    return [h.key for h in search.rank(DOCS, query)]


def test_search_ranks_names_first_and_uses_keywords_as_synonyms():
    assert keys("renew passport")[:2] == ["passport", "birth"]
    assert keys("bulky waste pickup")[0] == "bulky"
    assert keys("hole in the road") == ["pothole"]
    assert keys("couches") == ["bulky"], "plural folded"


def test_search_forgives_typos_and_completes_prefixes():
    assert keys("pasport")[0] == "passport"
    assert keys("matress")[0] == "bulky"
    assert keys("certif")[0] == "birth"
    assert keys("") == []
    assert keys("the a of") == []
    assert search.suggestions(DOCS, "pasport")[0] == "passport"


def test_edit_distance_counts_transpositions_as_one():
    assert search.edit_distance("form", "from", 2) == 1
    assert search.edit_distance("kitten", "sitting", 5) == 3
    assert search.edit_distance("a", "abcdef", 2) == 3

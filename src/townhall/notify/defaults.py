"""The templates every installation starts with (version 1 of each, in English).

An office edits them through `notify.actions.save_template`, which adds a version; messages
record the version they used. Translations are more rows with the same slug and another
language.
"""

from __future__ import annotations

from typing import Final

DEFAULT_TEMPLATES: Final[dict[str, dict[str, str]]] = {
    "request.acknowledgement": {
        "channel": "email",
        "subject": "We received your request ((tracking_code))",
        "body": (
            "Thank you for your report to ((site_name)).\n\n"
            "Request: ((service_name))\n"
            "Tracking code: ((tracking_code))\n"
            "Where: ((address))\n"
            "We expect to finish by: ((expected_date))\n\n"
            "Follow it here: ((tracking_url))\n"
            "To read or answer our messages, use your private link: ((private_url))\n"
        ),
    },
    "request.status_changed": {
        "channel": "email",
        "subject": "Update on request ((tracking_code)): ((status_label))",
        "body": (
            "Your request ((tracking_code)) (((service_name))) is now: ((status_label)).\n\n"
            "((note))\n\n"
            "Follow it here: ((tracking_url))\n"
        ),
    },
    "request.reply": {
        "channel": "email",
        "subject": "A message about your request ((tracking_code))",
        "body": (
            "((site_name)) wrote about your request ((tracking_code)) (((service_name))):\n\n"
            "((message))\n\n"
            "Answer through your private link: ((private_url))\n"
        ),
    },
    "request.new_in_area": {
        "channel": "email",
        "subject": "New request in ((district)): ((service_name))",
        "body": (
            "A new ((service_name)) request was reported in ((district)).\n\n"
            "((description))\n\n"
            "Follow it here: ((tracking_url))\n"
        ),
    },
    "office.status_changed": {
        "channel": "email",
        "subject": "((office_name)): ((status_label))",
        "body": (
            "((office_name)) is now: ((status_text)).\n\n"
            "((message))\n\n"
            "Longest estimated wait: ((longest_wait)).\n\n"
            "Live status and queues: ((office_url))\n"
        ),
    },
    "subscription.confirm": {
        "channel": "email",
        "subject": "You are following ((topic_label))",
        "body": (
            "You will get an email from ((site_name)) when there is news about ((topic_label)).\n"
        ),
    },
}

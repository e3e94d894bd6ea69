# ruff: noqa: E501 - the corpus is data: one labelled text per line reads and diffs best
"""Builds tests/data/pii_corpus.jsonl: service-request-like texts with their personal data
labelled, for measuring the open-data scrubber (tests/test_privacy_scrubber.py).

Run `python tests/data/make_pii_corpus.py` to regenerate; the output is committed and must not
change unless this file does (fixed seed). Names, numbers and addresses here are written by
hand, on purpose not drawn from Faker (whose first names the scrubber uses as a gazetteer) nor
from the demo city's lists, so the measurement is not the scrubber grading its own homework.
About one name in five is absent from the gazetteer. Phone numbers use fictional ranges,
IBANs and card numbers are the standard published test values or variants of them.

Every record: {"id", "text", "pii": [{"kind", "value"}], "known_names": [...], "source"}.
`known_names` is what the pipeline passes for that request (the resident's own name).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("pii_corpus.jsonl")

FIRST = [
    "Amara", "Bogdan", "Chidi", "Dolores", "Eamon", "Farida", "Giulia", "Hamid", "Ingrid",
    "Jorge", "Kofi", "Leilani", "Mateus", "Nkechi", "Oksana", "Pradeep", "Quentin", "Rashida",
    "Soren", "Thanh", "Ulrike", "Valentina", "Wanjiru", "Xochitl", "Yusuf", "Zofia", "Brendan",
    "Catalina", "Desmond", "Esperanza", "Fiona", "Gustavo", "Hiroko", "Ines", "Jasper",
    "Kateryna", "Lorenzo", "Marisol", "Nikhil", "Oluwaseun", "Paulina", "Rafael", "Svetlana",
    "Tomasz", "Uchenna", "Vikram", "Wilhelmina", "Yasmin", "Abdullahi", "Beatriz", "Mei",
    "Deshawn", "Maureen", "Patrick", "Rosalind", "Harold", "Gwendolyn", "Clarence", "Agnes",
]  # fmt: skip
LAST = [
    "Adeyemi", "Bergstrom", "Castellanos", "Dubrovski", "Eze", "Ferreira", "Gallagher",
    "Hosseini", "Ivanenko", "Jablonski", "Kaur", "Lindqvist", "Mbeki", "Nakamura", "Oyelaran",
    "Pietrangeli", "Quispe", "Rahman", "Szabo", "Tran", "Urquhart", "Vasquez", "Wojcik",
    "Yilmaz", "Zapata", "McAllister", "O'Donnell", "Okonkwo", "Delacroix", "Fairweather",
    "Abernathy", "Kowalczyk", "Haddad", "Nguyen", "Petrov", "Santangelo", "Whitfield",
]  # fmt: skip
STREETS = [
    "Quarry Street", "Sawmill Road", "Tanner Lane", "Orchard Avenue", "Ferry Street",
    "Bluebell Court", "Carriage Drive", "Granary Way", "Foundry Road", "Meadowlark Lane",
    "Cobble Hill Road", "Prospect Street", "Union Avenue", "Mill Pond Drive", "Depot Street",
]  # fmt: skip
SHORT_STREETS = ["Quarry St", "Sawmill Rd", "Orchard Ave", "Ferry St.", "Carriage Dr", "Tanner Ln"]
EMAIL_DOMAINS = ["example.org", "example.com", "mail.example.net", "example.co.uk"]
PHONES = [
    "413-555-0147", "(413) 555-0199", "413.555.0112", "+1 413 555 0166", "555-0123",
    "+44 20 7946 0958", "020 7946 0018", "+33 1 99 00 12 34", "+49 30 901820",
    "4135550131", "+1 (617) 555-0184", "(617)555-0102", "617 555 0177",
]  # fmt: skip
IBANS = [
    "DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32", "FR1420041010050500013M02606",
    "NL91ABNA0417164300", "ES91 2100 0418 4502 0005 1332", "IT60X0542811101000000123456",
    "DE89370400440532013001", "BE68 5390 0754 7034",
]  # fmt: skip
IDS = [
    ("SSN", "123-45-6789"), ("social security number", "078-05-1120"),
    ("national insurance number", "QQ 12 34 56 C"), ("passport", "X12345678"),
    ("passport number", "C03005988"), ("driver's license number", "S123-4567-8901"),
    ("ID number", "84736251"), ("customer number", "99120833"), ("tax id", "12-3456789"),
    ("ID", "A4567123"),
]  # fmt: skip
CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "6011 0009 9013 9424"]
PLATES = ["7ABC123", "XYZ 4821", "MA 5JK 220", "2GHT981"]

PROBLEMS = [
    "The streetlight is out", "There is a deep pothole", "Someone dumped a mattress",
    "The storm drain is clogged", "Graffiti on the bus shelter", "A tree branch is hanging low",
    "The crosswalk signal is broken", "Trash was not picked up this week",
    "Water is leaking from the hydrant", "The sidewalk is cracked and lifting",
]  # fmt: skip
PLACES = [
    "near Lincoln Avenue", "by Grace Church", "outside the library", "at Oak Park",
    "next to City Hall", "on Main Street", "by the Riverside playground", "at Jackson Square",
    "near the Washington Street bridge", "outside Martin Luther King Jr. Elementary",
    "behind the Franklin Street market", "across from Rose Garden",
]  # fmt: skip
NEGATIVE_TAILS = [
    " It has been like this since May 3.", " Please fix before the winter.",
    " Request #4521 was closed but nothing changed.", " About 12 bags of leaves.",
    " It happens every day around 7:30 pm.", " Reported last year too (2019).",
    " The hole is roughly 3 ft wide.", " Route 9 buses have to swerve.",
    " Cost of the repair last time was $1,200.", " Zip code 01060.",
    " Will someone come this week?", " Grace and I walk there daily.",
    " It is on the Hope Street side.", " Bill payment for the permit was made.",
    "", "", "",
]  # fmt: skip


def record(text: str, pii: list[tuple[str, str]], known: list[str], source: str) -> dict:
    for _, value in pii:
        assert value in text, (value, text)
    return {
        "text": text,
        "pii": [{"kind": kind, "value": value} for kind, value in pii],
        "known_names": known,
        "source": source,
    }


def person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def email_for(rng: random.Random, first: str, last: str) -> str:
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}"])
    return f"{local.lower().replace(chr(39), '')}@{rng.choice(EMAIL_DOMAINS)}"


def generated(rng: random.Random, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        problem, place = rng.choice(PROBLEMS), rng.choice(PLACES)
        kinds = rng.sample(
            ["name", "email", "phone", "address", "iban", "id", "card", "signed", "neighbour",
             "plate", "lower"],
            k=rng.choice([1, 1, 2, 2, 3]),
        )  # fmt: skip
        text = f"{problem} {place}."
        pii: list[tuple[str, str]] = []
        known: list[str] = []
        first, last = person(rng)
        for kind in kinds:
            if kind == "name":
                full = f"{first} {last}"
                text += rng.choice(
                    [f" My name is {full}.", f" {full} reported it first.",
                     f" You can ask {full} at the corner shop.", f" Contact: {full}."]
                )  # fmt: skip
                pii.append(("name", full))
            elif kind == "signed":
                full = f"{first} {last}"
                form = rng.choice([f"Thanks, {full}", f"-- {full}", f"Regards, {first}"])
                text += f" {form}"
                pii.append(("name", full if full in form else first))
                known.append(full)
            elif kind == "neighbour":
                other = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
                text += rng.choice(
                    [f" My neighbor {other} saw it happen.", f" {other} from number 12 agrees.",
                     f" Mrs. {other.split()[1]} next door complained too."]
                )  # fmt: skip
                value = other if other in text else other.split()[1]
                pii.append(("name", value))
            elif kind == "email":
                email = email_for(rng, first, last)
                text += rng.choice([f" Email me at {email}.", f" ({email})", f" Reply to {email}"])
                pii.append(("email", email))
            elif kind == "phone":
                phone = rng.choice(PHONES)
                text += rng.choice(
                    [f" Call me on {phone}.", f" My number is {phone}.", f" Tel {phone}"]
                )
                pii.append(("phone", phone))
            elif kind == "address":
                number = rng.randint(2, 2400)
                street = rng.choice(STREETS + SHORT_STREETS)
                unit = rng.choice(
                    [
                        "",
                        "",
                        f", Apt {rng.randint(1, 12)}{rng.choice('ABC')}",
                        f" #{rng.randint(2, 40)}",
                    ]
                )
                address = f"{number} {street}{unit}"
                text += rng.choice(
                    [f" I live at {address}.", f" It is in front of {address}.",
                     f" Outside my house, {address}."]
                )  # fmt: skip
                pii.append(("address", address.rstrip(".")))
            elif kind == "iban":
                iban = rng.choice(IBANS)
                text += rng.choice([f" Refund the fee to IBAN {iban}.", f" My account: {iban}"])
                pii.append(("iban", iban))
            elif kind == "id":
                cue, value = rng.choice(IDS)
                text += f" My {cue} is {value}."
                pii.append(("id", value))
            elif kind == "card":
                card = rng.choice(CARDS)
                text += f" I paid the permit with card {card}."
                pii.append(("card", card))
            elif kind == "plate":
                plate = rng.choice(PLATES)
                text += f" The car has plate {plate}."
                pii.append(("plate", plate))
            elif kind == "lower":
                full = f"{first} {last}".lower()
                text = text.lower() + f" thanks, {full}"
                pii = [(k, v.lower()) for k, v in pii]
                pii.append(("name", full))
        text += rng.choice(NEGATIVE_TAILS)
        out.append(record(" ".join(text.split()), pii, known, "generated"))
    return out


def negatives(rng: random.Random, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        text = f"{rng.choice(PROBLEMS)} {rng.choice(PLACES)}.{rng.choice(NEGATIVE_TAILS)}"
        out.append(record(" ".join(text.split()), [], [], "generated-negative"))
    return out


# Written by hand: the shapes templates do not produce, and hard negatives.
HAND: list[tuple[str, list[tuple[str, str]], list[str]]] = [
    ("hi, this is dolores fairweather calling about the bins on ferry street", [("name", "dolores fairweather")], ["Dolores Fairweather"]),
    ("Pothole at the corner of Quarry St and Union Ave, it's huge", [], []),
    ("The house at 17 Bluebell Court has had rats for weeks, the owner is Mr Abernathy", [("address", "17 Bluebell Court"), ("name", "Abernathy")], []),
    ("Please call my wife Hiroko on 617 555 0177 after 5pm", [("name", "Hiroko"), ("phone", "617 555 0177")], []),
    ("Abandoned car, plate 2GHT981, in front of 88 Depot Street for a month", [("plate", "2GHT981"), ("address", "88 Depot Street")], []),
    ("Yusuf Yilmaz and Zofia Wojcik from the tenants' association asked me to report this.", [("name", "Yusuf Yilmaz"), ("name", "Zofia Wojcik")], []),
    ("The light on Martin Luther King Jr. Boulevard is out again.", [], []),
    ("Dead raccoon on the sidewalk near 1200 block of Prospect Street.", [], []),
    ("Noise from the bar every Friday until 2am. Owner Jasper McAllister does nothing.", [("name", "Jasper McAllister")], []),
    ("My refund should go to NL91ABNA0417164300 please, the fee was charged twice.", [("iban", "NL91ABNA0417164300")], []),
    ("I already sent my SSN 078-05-1120 by mail, why do you need it again?", [("id", "078-05-1120")], []),
    ("Graffiti says 'Kofi was here' on the wall of the school.", [("name", "Kofi")], []),
    ("The Franklin Park fountain is broken.", [], []),
    ("Sent from my iPhone", [], []),
    ("Request 20230415 follow up: still not fixed.", [], []),
    ("Leaves blocking the drain on Orchard Avenue between 10th and 12th.", [], []),
    ("There are 3 potholes on Sawmill Road, the biggest near mile marker 12.", [], []),
    ("Rafael at the front desk told me to submit this online.", [("name", "Rafael")], []),
    ("My daughter Catalina tripped on the broken step at the library entrance.", [("name", "Catalina")], []),
    ("Water main break flooding Tanner Lane since 6 am.", [], []),
    ("Please contact the building manager, Svetlana Petrov, 413-555-0147, svetlana@example.com", [("name", "Svetlana Petrov"), ("phone", "413-555-0147"), ("email", "svetlana@example.com")], []),
    ("Apartment 4B has no heat and the landlord Gustavo Castellanos won't answer.", [("address", "Apartment 4B"), ("name", "Gustavo Castellanos")], []),
    ("Send the letter to PO Box 4471, Riverton.", [("address", "PO Box 4471")], []),
    ("The bus stop sign at Union and Depot is missing.", [], []),
    ("Big dog off leash in Oak Park every morning, attacks other dogs.", [], []),
    ("Tree down across the road after the storm on June 14.", [], []),
    ("I am Oksana Ivanenko, flat 2, 9 Granary Way. The stairwell light is out.", [("name", "Oksana Ivanenko"), ("address", "flat 2"), ("address", "9 Granary Way")], ["Oksana Ivanenko"]),
    ("call me back 413 555 0112 - Pradeep", [("phone", "413 555 0112"), ("name", "Pradeep")], ["Pradeep Kaur"]),
    ("my card 4111-1111-1111-1111 was charged twice for the parking permit", [("card", "4111-1111-1111-1111")], []),
    ("Passport C03005988 lost at the service center counter, please check.", [("id", "C03005988")], []),
    ("Snow not cleared on Meadowlark Lane, 3rd time this winter.", [], []),
    ("The crossing guard Mr. Okonkwo says cars speed here.", [("name", "Okonkwo")], []),
    ("Hello, the recycling bin I got has a crack. Order number 48213.", [], []),
    ("Broken glass all over the playground at Riverside Park.", [], []),
    ("Ines Ferreira (ines.ferreira@mail.example.net) reported the same last week.", [("name", "Ines Ferreira"), ("email", "ines.ferreira@mail.example.net")], []),
    ("Streetlight pole number 4471-22 is flickering.", [], []),
    ("Permit office told me to ask for Beatriz or Lorenzo.", [("name", "Beatriz"), ("name", "Lorenzo")], []),
    ("Hydrant leaking at 2400 Cobble Hill Road.", [("address", "2400 Cobble Hill Road")], []),
    ("The new bike lane on Ferry Street is blocked by delivery trucks.", [], []),
    ("Mei says the smell comes from the drain.", [("name", "Mei")], []),
]  # fmt: skip


def main() -> None:
    rng = random.Random(20261127)
    records = generated(rng, 260) + negatives(rng, 90)
    records += [record(text, pii, known, "hand") for text, pii, known in HAND]
    rng.shuffle(records)
    with OUT.open("w", encoding="utf-8") as handle:
        for number, item in enumerate(records, start=1):
            handle.write(json.dumps({"id": number, **item}, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} records to {OUT}")


if __name__ == "__main__":
    main()


# Held out: written after the scrubber was tuned on the corpus above and never tuned on.
# Its numbers are the honest estimate quoted in docs/privacy.md.
HOLDOUT_OUT = Path(__file__).with_name("pii_corpus_holdout.jsonl")
HOLDOUT: list[tuple[str, list[tuple[str, str]], list[str]]] = [
    ("Hi there. The bin lid at 5 Lantern Row got smashed by the truck. I'm Teodora Kiriakou, happy to show you.", [("address", "5 Lantern Row"), ("name", "Teodora Kiriakou")], ["Teodora Kiriakou"]),
    ("overflowing dumpster behind the pizza place again. ring me 413 555 0190 if you need details", [("phone", "413 555 0190")], []),
    ("Streetlight flickering for two weeks on Chestnut Hill. Nobody came.", [], []),
    ("My elderly mother, Ruth Abramowitz, fell on the icy path outside 212 Winthrop Avenue.", [("name", "Ruth Abramowitz"), ("address", "212 Winthrop Avenue")], []),
    ("Please refund to my account GB33BUKB20201555555555 as the office told me.", [("iban", "GB33BUKB20201555555555")], []),
    ("The kids from number 40 keep setting off fireworks. Their dad Marek won't listen.", [("name", "Marek")], []),
    ("Illegal dumping at the end of Foundry Road, looks like construction waste.", [], []),
    ("Email: kwabena.asante+311@example.org. Phone: +233 20 123 4567. Re: broken swing.", [("email", "kwabena.asante+311@example.org"), ("phone", "+233 20 123 4567")], []),
    ("Water pressure very low since Monday in the whole building.", [], []),
    ("Tenant at unit 3C, 1450 Harbor View Drive, reports mold in the hallway.", [("address", "unit 3C"), ("address", "1450 Harbor View Drive")], []),
    ("The sign at Elm and 3rd was knocked over by a snow plow.", [], []),
    ("Sidewalk blocked by scaffolding for months; contractor is Brightline Builders.", [], []),
    ("I reported this in March (ticket 5512) and again in April.", [], []),
    ("Cars parked on the sidewalk every night on Juniper Street, plates NH 482 KLM and 9TRD445.", [("plate", "NH 482 KLM"), ("plate", "9TRD445")], []),
    ("Ask Siddharth at the corner store, he saw who dumped the couch.", [("name", "Siddharth")], []),
    ("Noise complaint: 88 Willow Street apartment 2F plays loud music after midnight.", [("address", "88 Willow Street apartment 2F")], []),
    ("please send someone to fix the bench at the park its broken since weeks - lucia fernandes", [("name", "lucia fernandes")], ["Lucia Fernandes"]),
    ("My SSN is 219-09-9999 and I need my parking fine record corrected.", [("id", "219-09-9999")], []),
    ("Passport no. K8845120 was left at the DMV counter on Tuesday.", [("id", "K8845120")], []),
    ("Bus shelter glass shattered at the Lincoln Avenue stop.", [], []),
    ("Dear team, the crossing at Pleasant St is dangerous. Best, Henrik Sandvik", [("name", "Henrik Sandvik")], ["Henrik Sandvik"]),
    ("Pay back the duplicate charge to IBAN CH93 0076 2011 6238 5295 7 please.", [("iban", "CH93 0076 2011 6238 5295 7")], []),
    ("Fallen tree blocking the bike path near the river, about 200 m from the bridge.", [], []),
    ("My neighbour Mrs Oyelowo has no hot water and is 90 years old.", [("name", "Oyelowo")], []),
    ("Card ending 4242 was charged; full number 4242 4242 4242 4242.", [("card", "4242 4242 4242 4242")], []),
    ("Rats near the school playground on Sycamore Lane.", [], []),
    ("I am writing on behalf of my father Giovanni Russo who lives at 17 Laurel Court.", [("name", "Giovanni Russo"), ("address", "17 Laurel Court")], []),
    ("call back on 07700 900123 (mobile)", [("phone", "07700 900123")], []),
    ("Potholes everywhere on Route 5 between exit 12 and 13.", [], []),
    ("The recycling was left behind again on Birch Road. Second time in May.", [], []),
    ("Dog barking all day at 31B Mulberry St. Owner is a Mr. Haverford.", [("address", "31B Mulberry St"), ("name", "Haverford")], []),
    ("My national ID 7501015800087 was on the form I submitted, please delete it.", [("id", "7501015800087")], []),
    ("Graffiti on the library wall says 'JT 2024'.", [], []),
    ("Thank you, Anneliese", [("name", "Anneliese")], ["Anneliese Brandt"]),
    ("The crossing guard on Hawthorn Avenue (her name is Precious Ndlovu) deserves thanks.", [("name", "Precious Ndlovu")], []),
    ("Flooding in the underpass at 9 am every time it rains.", [], []),
    ("Contact person: Dr. Amadou Diallo, 617-555-0161, adiallo@example.net", [("name", "Amadou Diallo"), ("phone", "617-555-0161"), ("email", "adiallo@example.net")], []),
    ("Abandoned bicycle locked to the rack at City Hall for 3 months.", [], []),
    ("Loud construction at 6:30 am on Saturday on Aspen Way.", [], []),
    ("My driver licence D1234-56789-01234 shows the wrong address.", [("id", "D1234-56789-01234")], []),
    ("I live at 4021 N Cypress Boulevard and the streetlight outside is out.", [("address", "4021 N Cypress Boulevard")], []),
    ("Broken water fountain in Maple Grove park, near the tennis courts.", [], []),
    ("Hello, it's Björn Halvorsen again about the leaking hydrant.", [("name", "Björn Halvorsen")], ["Björn Halvorsen"]),
    ("Dead deer on the shoulder of Old Mill Road, please remove.", [], []),
    ("the man at 23 pine street keeps dumping oil in the storm drain", [("address", "23 pine street")], []),
    ("Requesting a new bin, account 0049-2231-88, thanks.", [("id", "0049-2231-88")], []),
    ("Nadia Rahimi and her kids almost got hit at the crosswalk.", [("name", "Nadia Rahimi")], []),
    ("Speeding cars on Walnut Street, we need a speed bump.", [], []),
    ("My son Tobias was bitten by a loose dog in Cedar Hill park.", [("name", "Tobias")], []),
    ("Street sweeping sign missing at the corner by the bakery.", [], []),
    ("Forwarding from jkowalski@example.com: the fence is down.", [("email", "jkowalski@example.com")], []),
    ("Please reply by text to +1 413-555-0108.", [("phone", "+1 413-555-0108")], []),
    ("Grace Baptist Church lot has a huge pothole near the entrance.", [], []),
    ("Leaking pipe in the basement of the community center.", [], []),
    ("Trash cans left on the street all week at Bayberry Terrace.", [], []),
    ("Ms. Fairbanks from the housing office promised to call but never did.", [("name", "Fairbanks")], []),
    ("Wire hanging from the pole outside 600 Commonwealth Ave, Suite 210.", [("address", "600 Commonwealth Ave, Suite 210")], []),
    ("Someone painted over the mural on the Jefferson Street underpass.", [], []),
    ("Joyce and Ahmed Karimi asked me to report the broken gate.", [("name", "Joyce"), ("name", "Ahmed Karimi")], []),
    ("The heat in the senior center has been off since November 2.", [], []),
]  # fmt: skip


def write_holdout() -> None:
    rng = random.Random(7)
    records = [record(text, pii, known, "holdout") for text, pii, known in HOLDOUT]
    rng.shuffle(records)
    with HOLDOUT_OUT.open("w", encoding="utf-8") as handle:
        for number, item in enumerate(records, start=1):
            handle.write(json.dumps({"id": number, **item}, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} records to {HOLDOUT_OUT}")


write_holdout()

"""Words the demo city is made of: names, streets, the service catalogue, request templates.

Kept apart from `city.py` so the generator reads as logic and this file reads as content.
Everything here is invented. Phone numbers use the 555-0100..0199 block reserved for fiction,
email addresses use domains reserved by RFC 2606, so nothing here can reach a real person.
"""

from __future__ import annotations

from typing import Any, Final

CITY_NAME: Final = "Riverton"
STATE: Final = "MA"
# RFC 2606 reserves example.org and its subdomains: demo mail can never reach a real inbox.
CITY_DOMAIN: Final = "riverton.example.org"
RESIDENT_DOMAIN: Final = "example.org"
AREA_CODE: Final = "413"

FIRST_NAMES: Final = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Carlos", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley",
    "Luis", "Kimberly", "Kevin", "Emily", "Brian", "Donna", "George", "Michelle", "Wei", "Carol",
    "Andre", "Amanda", "Jamal", "Melissa", "Ryan", "Deborah", "Jacob", "Stephanie", "Gary",
    "Rebecca", "Nicholas", "Sharon", "Eric", "Laura", "Jonathan", "Cynthia", "Priya", "Amy",
    "Justin", "Angela", "Scott", "Maria", "Brandon", "Ana", "Samuel", "Fatima", "Hiroshi", "Olga",
    "Kwame", "Aisha", "Diego", "Mei", "Tyrone", "Rosa", "Pedro", "Grace", "Omar", "Chloe", "Ivan",
    "Nadia", "Sean", "Keisha",
)  # fmt: skip

LAST_NAMES: Final = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Chen", "Patel", "Kowalski", "O'Brien",
    "Murphy", "Sullivan", "Okafor", "Tanaka", "Novak", "Costa", "Fitzgerald", "Dubois", "Singh",
    "Kim", "Park", "Silva", "Mensah", "Haddad", "Ivanova", "Schmidt",
)  # fmt: skip

# Central district first; the rest are handed out in seeded order. No compass words, so a name
# can never contradict where its district lands on the map.
DISTRICT_NAMES: Final = (
    "Old Town", "Riverside", "Millbrook", "Oak Park", "Cedar Hill", "Maple Grove", "Ironworks",
    "Lakeview", "Fairmount", "Brookside", "Kingsbury", "Pinecrest", "Elm Heights", "Harbor Point",
)  # fmt: skip

# Streets run along the lattice rows, avenues along its columns; the middle row is Main Street.
STREET_NAMES: Final = (
    "Elm", "Chestnut", "Walnut", "Pine", "Spruce", "Locust", "Willow", "Birch", "Hickory",
    "Magnolia", "Poplar", "Sycamore", "Laurel", "Juniper", "Holly", "Aspen", "Hawthorn", "Ash",
    "Beech", "Linden", "Mulberry", "Alder", "Cypress", "Dogwood", "Hemlock", "Larch", "Redwood",
    "Sassafras", "Tamarack", "Yew", "Hazel", "Rowan", "Sumac", "Buckeye", "Cottonwood", "Fir",
)  # fmt: skip
AVENUE_NAMES: Final = (
    "Washington", "Lincoln", "Franklin", "Jefferson", "Madison", "Adams", "Jackson", "Monroe",
    "Hamilton", "Grant", "Lafayette", "Bradford", "Winthrop", "Putnam", "Revere", "Hancock",
    "Prescott", "Warren", "Sumner", "Everett", "Dwight", "Holyoke", "Chapin", "Pynchon",
    "Sargent", "Thayer", "Whitney", "Pomeroy", "Bancroft", "Lyman", "Stockbridge", "Emerson",
    "Alcott", "Thoreau", "Dickinson", "Bryant",
)  # fmt: skip
STREET_SUFFIXES: Final = ("Street", "Street", "Street", "Road", "Lane", "Drive")
AVENUE_SUFFIXES: Final = ("Avenue", "Avenue", "Avenue", "Boulevard", "Way", "Place")

LANDMARKS: Final = (
    "the bus stop", "the school", "the library", "the playground", "the gas station",
    "the pharmacy", "the church", "the corner store", "the laundromat", "the community garden",
    "the fire station", "the daycare", "the parking lot", "the pizza place", "the bank",
)  # fmt: skip

TREE_SPECIES: Final = (
    # (common name, scientific name, relative frequency)
    ("Red maple", "Acer rubrum", 18),
    ("Norway maple", "Acer platanoides", 12),
    ("Pin oak", "Quercus palustris", 9),
    ("Northern red oak", "Quercus rubra", 8),
    ("Honeylocust", "Gleditsia triacanthos", 10),
    ("London planetree", "Platanus x acerifolia", 7),
    ("Littleleaf linden", "Tilia cordata", 7),
    ("Callery pear", "Pyrus calleryana", 6),
    ("Ginkgo", "Ginkgo biloba", 5),
    ("Sugar maple", "Acer saccharum", 5),
    ("American elm", "Ulmus americana", 4),
    ("Japanese zelkova", "Zelkova serrata", 4),
    ("Eastern redbud", "Cercis canadensis", 3),
    ("Kousa dogwood", "Cornus kousa", 2),
)

# --- Service catalogue -----------------------------------------------------------------------
# `office` names the responsible office by role; `available_at` lists the roles of offices where
# a resident can get the service in person ("service-centers" means every district centre).
# `target_days` is the published service level for requests; `processing_days` for the rest.

_REQUEST_CHANNELS: Final = ("online", "phone", "app")

SERVICES: Final[tuple[dict[str, Any], ...]] = (
    {
        "code": "POTHOLE",
        "name": "Pothole repair",
        "category": "Streets & Sidewalks",
        "description": "Report a pothole on a city street. Crews fill reported potholes, "
        "usually within a week; deep ones on busy roads first.",
        "keywords": ("pothole", "hole in road", "road damage", "crater", "asphalt", "street"),
        "office": "public-works-yard",
        "target_days": 5,
    },
    {
        "code": "STREETLIGHT",
        "name": "Streetlight out",
        "category": "Streets & Sidewalks",
        "description": "Report a streetlight that is out, flickering or on during the day. "
        "Give the pole number if you can see it.",
        "keywords": ("streetlight", "street light", "lamp post", "light out", "dark street"),
        "office": "public-works-yard",
        "target_days": 7,
    },
    {
        "code": "GRAFFITI",
        "name": "Graffiti removal",
        "category": "Clean City",
        "description": "Report graffiti on public property, or ask for removal from private "
        "property facing the street (owner consent required).",
        "keywords": ("graffiti", "tagging", "vandalism", "spray paint", "paint"),
        "office": "public-works-yard",
        "target_days": 4,
    },
    {
        "code": "MISSED_COLLECTION",
        "name": "Missed trash or recycling collection",
        "category": "Waste & Recycling",
        "description": "Your trash, recycling or yard waste was not picked up on your "
        "collection day. Report it by the end of the next working day.",
        "keywords": ("missed pickup", "trash", "garbage", "recycling", "bin", "collection"),
        "office": "public-works-yard",
        "target_days": 2,
    },
    {
        "code": "BULKY_WASTE",
        "name": "Bulky item pickup",
        "category": "Waste & Recycling",
        "description": "Schedule a curbside pickup of furniture, mattresses and appliances. "
        "Up to five items per pickup; appliances with refrigerant need a sticker.",
        "keywords": ("bulky", "furniture", "mattress", "couch", "appliance", "large item"),
        "office": "public-works-yard",
        "target_days": 8,
        "fee_cents": 2500,
        "fee_note": "$25 per pickup, up to five items",
    },
    {
        "code": "NOISE",
        "name": "Noise complaint",
        "category": "Noise & Nuisance",
        "description": "Report loud music, parties, construction outside permitted hours or "
        "barking dogs. For an emergency call 911.",
        "keywords": ("noise", "loud music", "party", "barking", "construction noise"),
        "office": "city-hall",
        "target_days": 1,
    },
    {
        "code": "ILLEGAL_DUMPING",
        "name": "Illegal dumping",
        "category": "Waste & Recycling",
        "description": "Report trash, tires or construction debris dumped on streets, "
        "sidewalks, parks or vacant lots.",
        "keywords": ("dumping", "fly tipping", "debris", "tires", "trash pile", "litter"),
        "office": "public-works-yard",
        "target_days": 5,
    },
    {
        "code": "TREE",
        "name": "Street tree problem",
        "category": "Parks & Trees",
        "description": "Report a fallen or hanging branch, a dead or leaning street tree, or "
        "roots lifting the sidewalk. Arborists inspect before any work.",
        "keywords": ("tree", "branch", "limb", "fallen tree", "pruning", "dead tree"),
        "office": "parks-forestry",
        "target_days": 14,
    },
    {
        "code": "ABANDONED_VEHICLE",
        "name": "Abandoned vehicle",
        "category": "Vehicles & Parking",
        "description": "Report a vehicle parked on a public street for more than 72 hours "
        "without moving, or one without plates. It is tagged before it is towed.",
        "keywords": ("abandoned car", "vehicle", "junk car", "no plates", "parked"),
        "office": "city-hall",
        "target_days": 10,
    },
    {
        "code": "SNOW_ICE",
        "name": "Unplowed street or icy sidewalk",
        "category": "Streets & Sidewalks",
        "description": "Report a street that has not been plowed after a storm, or an icy or "
        "unshoveled sidewalk. Main roads are plowed first.",
        "keywords": ("snow", "plow", "ice", "icy", "unshoveled", "sidewalk", "salt"),
        "office": "public-works-yard",
        "target_days": 2,
    },
    {
        "code": "LEAF_COLLECTION",
        "name": "Leaf collection",
        "category": "Waste & Recycling",
        "description": "Request curbside collection of bagged leaves, or report leaf piles "
        "left in the street, from October to early December.",
        "keywords": ("leaves", "leaf pickup", "yard waste", "autumn", "fall cleanup"),
        "office": "public-works-yard",
        "target_days": 7,
    },
    {
        "code": "OVERGROWN",
        "name": "Overgrown grass or weeds",
        "category": "Parks & Trees",
        "description": "Report overgrown grass, weeds or vegetation blocking sidewalks, signs "
        "or sight lines, on public land or vacant lots.",
        "keywords": ("grass", "weeds", "overgrown", "mowing", "vegetation", "lawn"),
        "office": "parks-forestry",
        "target_days": 10,
    },
    {
        "code": "SIDEWALK",
        "name": "Damaged sidewalk",
        "category": "Streets & Sidewalks",
        "description": "Report a cracked, raised or broken sidewalk or curb ramp that is a "
        "tripping hazard.",
        "keywords": ("sidewalk", "trip hazard", "curb", "ramp", "cracked pavement"),
        "office": "public-works-yard",
        "target_days": 30,
    },
    {
        "code": "TRAFFIC_SIGNAL",
        "name": "Traffic signal problem",
        "category": "Streets & Sidewalks",
        "description": "Report a traffic light that is dark, stuck, flashing or badly timed, "
        "or a damaged pedestrian push button.",
        "keywords": ("traffic light", "signal", "stoplight", "crosswalk button", "flashing"),
        "office": "public-works-yard",
        "target_days": 1,
    },
    {
        "code": "STORM_DRAIN",
        "name": "Blocked storm drain",
        "category": "Water & Sewer",
        "description": "Report a catch basin or storm drain that is clogged, overflowing or "
        "missing its grate, or flooding at an intersection.",
        "keywords": ("storm drain", "catch basin", "flooding", "clogged drain", "puddle"),
        "office": "public-works-yard",
        "target_days": 4,
    },
    {
        "code": "DEAD_ANIMAL",
        "name": "Dead animal removal",
        "category": "Health & Environment",
        "description": "Report a dead animal on a street, sidewalk or in a park. Pets on "
        "private property are not collected.",
        "keywords": ("dead animal", "roadkill", "carcass", "deer", "raccoon"),
        "office": "public-works-yard",
        "target_days": 1,
    },
    {
        "code": "RODENT",
        "name": "Rodent sighting",
        "category": "Health & Environment",
        "description": "Report rats or rodent burrows in public areas, alleys or around "
        "garbage. Inspectors bait public property and advise owners.",
        "keywords": ("rats", "mice", "rodent", "pest", "vermin", "burrow"),
        "office": "city-hall",
        "target_days": 7,
    },
    # --- directory-only services (no Open311 requests) ---
    {
        "code": "BIRTH_CERT",
        "name": "Birth certificate copy",
        "category": "Civil Records",
        "description": "Certified copy of a birth record for anyone born in Riverton. "
        "Needed for passports, school enrolment and benefits.",
        "documents": ("Photo ID", "Parents' names and date of birth on the record"),
        "fee_cents": 1500,
        "processing_days": 1,
        "channels": ("online", "in_person", "mail"),
        "keywords": ("birth certificate", "birth record", "vital records", "passport"),
        "life_events": ("having a baby", "applying for a passport"),
        "office": "city-hall",
        "available_at": ("city-hall", "service-centers"),
    },
    {
        "code": "DEATH_CERT",
        "name": "Death certificate copy",
        "category": "Civil Records",
        "description": "Certified copy of a death record, needed to settle an estate, close "
        "accounts and claim benefits.",
        "documents": ("Photo ID", "Proof of relationship or legal interest"),
        "fee_cents": 1500,
        "processing_days": 2,
        "channels": ("in_person", "mail"),
        "keywords": ("death certificate", "vital records", "estate", "funeral"),
        "life_events": ("death of a loved one",),
        "office": "city-hall",
        "available_at": ("city-hall",),
    },
    {
        "code": "MARRIAGE_LICENSE",
        "name": "Marriage license",
        "category": "Civil Records",
        "description": "Both partners apply together in person; the license is ready after "
        "the three-day waiting period and is valid for 60 days.",
        "documents": (
            "Photo ID for both partners",
            "Birth certificates",
            "Divorce decree if previously married",
        ),
        "fee_cents": 4000,
        "processing_days": 3,
        "channels": ("in_person",),
        "keywords": ("marriage", "wedding", "license", "intention of marriage"),
        "life_events": ("getting married",),
        "office": "city-hall",
        "available_at": ("city-hall",),
    },
    {
        "code": "RESIDENT_PARKING",
        "name": "Residential parking permit",
        "category": "Vehicles & Parking",
        "description": "Annual permit to park in resident-only zones near your home. One per "
        "registered vehicle.",
        "documents": (
            "Vehicle registration at a Riverton address",
            "Proof of residency dated within 30 days",
        ),
        "fee_cents": 2500,
        "processing_days": 1,
        "channels": ("online", "in_person"),
        "keywords": ("parking permit", "resident parking", "sticker", "car"),
        "life_events": ("moving to Riverton", "buying a car"),
        "office": "city-hall",
        "available_at": ("city-hall", "service-centers"),
    },
    {
        "code": "DOG_LICENSE",
        "name": "Dog license",
        "category": "Pets",
        "description": "Every dog over six months needs a yearly license. Spayed or neutered "
        "dogs pay less.",
        "documents": (
            "Current rabies vaccination certificate",
            "Spay/neuter certificate for the reduced fee",
        ),
        "fee_cents": 1500,
        "fee_note": "$15; $10 if spayed or neutered",
        "processing_days": 0,
        "channels": ("online", "in_person", "mail"),
        "keywords": ("dog", "pet license", "dog tag", "rabies"),
        "life_events": ("getting a pet", "moving to Riverton"),
        "office": "city-hall",
        "available_at": ("city-hall", "service-centers"),
    },
    {
        "code": "BUILDING_PERMIT",
        "name": "Building permit",
        "category": "Permits & Licenses",
        "description": "Required for new construction, additions, structural changes, decks, "
        "roofing and most renovations. Plans are reviewed before approval.",
        "documents": (
            "Construction plans",
            "Contractor license and insurance",
            "Owner authorization",
            "Site plan for additions",
        ),
        "fee_cents": 15000,
        "fee_note": "From $150; $12 per $1,000 of construction cost",
        "processing_days": 20,
        "channels": ("online", "in_person"),
        "keywords": ("building permit", "renovation", "construction", "addition", "deck"),
        "life_events": ("renovating a home", "buying a home"),
        "office": "permit-center",
        "available_at": ("permit-center",),
    },
    {
        "code": "BUSINESS_CERT",
        "name": "Business certificate (DBA)",
        "category": "Permits & Licenses",
        "description": "Register a business name ('doing business as') before opening a bank "
        "account or signing a lease. Valid for four years.",
        "documents": ("Photo ID", "Business address", "Notarized application"),
        "fee_cents": 5000,
        "processing_days": 2,
        "channels": ("in_person", "mail"),
        "keywords": ("business certificate", "dba", "doing business as", "company name"),
        "life_events": ("starting a business",),
        "office": "permit-center",
        "available_at": ("permit-center", "city-hall"),
    },
    {
        "code": "FOOD_PERMIT",
        "name": "Food establishment permit",
        "category": "Permits & Licenses",
        "description": "Restaurants, cafés, food trucks and caterers need a permit and a "
        "passed health inspection before serving food.",
        "documents": (
            "Floor plan and menu",
            "Certified food protection manager certificate",
            "Business certificate",
        ),
        "fee_cents": 20000,
        "processing_days": 15,
        "channels": ("online", "in_person"),
        "keywords": ("food permit", "restaurant", "food truck", "health inspection", "cafe"),
        "life_events": ("starting a business",),
        "office": "permit-center",
        "available_at": ("permit-center",),
    },
    {
        "code": "EVENT_PERMIT",
        "name": "Special event permit",
        "category": "Permits & Licenses",
        "description": "Block parties, street fairs, races and events in parks need a permit "
        "at least 30 days ahead.",
        "documents": (
            "Site map",
            "Certificate of insurance",
            "Neighbor notification for block parties",
        ),
        "fee_cents": 7500,
        "processing_days": 21,
        "channels": ("online", "in_person"),
        "keywords": ("event permit", "block party", "street fair", "festival", "race"),
        "life_events": ("organizing an event",),
        "office": "permit-center",
        "available_at": ("permit-center",),
    },
    {
        "code": "DUMPSTER_PERMIT",
        "name": "Street occupancy permit",
        "category": "Permits & Licenses",
        "description": "Place a dumpster, storage pod or moving truck on the street or "
        "sidewalk. Signs are posted 48 hours before.",
        "documents": ("Location sketch", "Dates needed", "Contractor insurance for dumpsters"),
        "fee_cents": 3500,
        "fee_note": "$35 for up to 7 days",
        "processing_days": 3,
        "channels": ("online", "in_person"),
        "keywords": ("dumpster", "moving truck", "street occupancy", "pod", "no parking"),
        "life_events": ("moving to Riverton", "renovating a home"),
        "office": "permit-center",
        "available_at": ("permit-center",),
    },
    {
        "code": "RENTAL_REGISTRATION",
        "name": "Rental property registration",
        "category": "Housing & Building",
        "description": "Landlords register every rental unit each year; units are inspected "
        "every five years or after a tenant complaint.",
        "documents": (
            "Deed or proof of ownership",
            "Property manager contact",
            "Lead compliance certificate for pre-1978 buildings",
        ),
        "fee_cents": 2500,
        "fee_note": "$25 per unit per year",
        "processing_days": 10,
        "channels": ("online", "in_person"),
        "keywords": ("rental registration", "landlord", "apartment", "inspection"),
        "life_events": ("renting out property",),
        "office": "permit-center",
        "available_at": ("permit-center",),
    },
    {
        "code": "VOTER_REGISTRATION",
        "name": "Voter registration",
        "category": "Elections",
        "description": "Register to vote or update your address. Register at least ten days "
        "before an election.",
        "documents": ("Driver's license or last four digits of SSN",),
        "processing_days": 5,
        "channels": ("online", "in_person", "mail"),
        "keywords": ("vote", "voter registration", "election", "ballot", "polling place"),
        "life_events": ("turning 18", "moving to Riverton", "becoming a citizen"),
        "office": "city-hall",
        "available_at": ("city-hall", "service-centers"),
    },
    {
        "code": "PROPERTY_TAX",
        "name": "Property tax payment",
        "category": "Taxes & Payments",
        "description": "Pay quarterly real estate and personal property tax bills online, by "
        "mail or at a cashier window.",
        "documents": ("Bill or parcel number",),
        "processing_days": 0,
        "channels": ("online", "in_person", "mail", "phone"),
        "keywords": ("property tax", "real estate tax", "tax bill", "pay", "parcel"),
        "life_events": ("buying a home",),
        "office": "city-hall",
        "available_at": ("city-hall", "service-centers"),
    },
    {
        "code": "SENIOR_EXEMPTION",
        "name": "Senior property tax exemption",
        "category": "Taxes & Payments",
        "description": "Homeowners aged 65 or older with limited income can reduce their "
        "property tax. Apply each year by April 1.",
        "documents": ("Proof of age", "Income statements", "Proof of ownership and residence"),
        "processing_days": 30,
        "channels": ("in_person", "mail"),
        "keywords": ("senior", "tax exemption", "abatement", "elderly", "discount"),
        "life_events": ("retiring", "turning 65"),
        "office": "city-hall",
        "available_at": ("city-hall", "service-centers"),
    },
    {
        "code": "RESIDENCY_PROOF",
        "name": "Proof of residency letter",
        "category": "Civil Records",
        "description": "A letter confirming your Riverton address from the annual street "
        "listing, for school enrolment or in-state tuition.",
        "documents": ("Photo ID", "Utility bill or lease"),
        "fee_cents": 500,
        "processing_days": 1,
        "channels": ("in_person", "mail"),
        "keywords": ("residency", "proof of address", "census", "street listing"),
        "life_events": ("moving to Riverton", "enrolling a child in school"),
        "office": "city-hall",
        "available_at": ("city-hall", "service-centers"),
    },
    {
        "code": "BIN_ORDER",
        "name": "New or replacement trash cart",
        "category": "Waste & Recycling",
        "description": "Order a trash or recycling cart for a new home, or replace a broken "
        "or stolen one. Delivered within two weeks.",
        "documents": ("Proof of residency",),
        "fee_cents": 6500,
        "fee_note": "Recycling carts free; trash carts $65",
        "processing_days": 10,
        "channels": ("online", "phone", "in_person"),
        "keywords": ("trash cart", "recycling bin", "toter", "new bin", "broken bin"),
        "life_events": ("moving to Riverton",),
        "office": "public-works-yard",
        "available_at": ("public-works-yard", "service-centers"),
    },
    {
        "code": "YARD_WASTE_STICKER",
        "name": "Yard waste sticker",
        "category": "Waste & Recycling",
        "description": "Seasonal sticker for curbside yard waste collection, April to December.",
        "documents": ("Proof of residency",),
        "fee_cents": 4000,
        "processing_days": 0,
        "channels": ("online", "in_person"),
        "keywords": ("yard waste", "sticker", "grass clippings", "compost", "brush"),
        "life_events": ("buying a home",),
        "office": "public-works-yard",
        "available_at": ("public-works-yard", "service-centers", "city-hall"),
    },
    {
        "code": "HAZARDOUS_WASTE",
        "name": "Household hazardous waste drop-off",
        "category": "Waste & Recycling",
        "description": "Bring paint, solvents, batteries, fluorescent bulbs and electronics "
        "to the yard on drop-off Saturdays.",
        "documents": ("Proof of residency (driver's license or utility bill)",),
        "processing_days": 0,
        "channels": ("in_person",),
        "keywords": ("hazardous waste", "paint", "batteries", "electronics", "chemicals"),
        "life_events": ("moving to Riverton", "renovating a home"),
        "office": "public-works-yard",
        "available_at": ("public-works-yard",),
    },
    {
        "code": "PAVILION_RESERVATION",
        "name": "Park pavilion reservation",
        "category": "Parks & Trees",
        "description": "Reserve a picnic pavilion or field for a family gathering or league "
        "game, May to October.",
        "documents": ("Photo ID", "Certificate of insurance for groups over 100"),
        "fee_cents": 5000,
        "fee_note": "$50 per half day for residents",
        "processing_days": 5,
        "channels": ("online", "phone", "in_person"),
        "keywords": ("pavilion", "picnic", "park reservation", "field", "birthday party"),
        "life_events": ("organizing an event",),
        "office": "parks-forestry",
        "available_at": ("parks-forestry",),
    },
    {
        "code": "TREE_PLANTING",
        "name": "Street tree planting",
        "category": "Parks & Trees",
        "description": "Ask for a free street tree in front of your home. Planting happens in "
        "spring and fall after a site check for utilities.",
        "documents": (),
        "processing_days": 120,
        "channels": ("online", "phone"),
        "keywords": ("plant a tree", "street tree", "shade", "greening", "free tree"),
        "life_events": ("buying a home",),
        "office": "parks-forestry",
        "available_at": ("parks-forestry",),
    },
    {
        "code": "FOOD_ASSISTANCE",
        "name": "Food and utility assistance referral",
        "category": "Social Services",
        "description": "Caseworkers help you apply for SNAP, fuel assistance and utility "
        "discounts, and refer you to food pantries.",
        "documents": ("Photo ID", "Proof of income", "Recent utility bill"),
        "processing_days": 14,
        "channels": ("in_person", "phone"),
        "keywords": ("food assistance", "snap", "fuel assistance", "pantry", "heating help"),
        "life_events": ("losing a job", "retiring", "having a baby"),
        "office": "city-hall",
        "available_at": ("service-centers",),
    },
)

# --- Request description templates --------------------------------------------------------
# `{name}` slots draw from SLOT_VALUES[code][name] or, failing that, COMMON_SLOTS; `{addr}`,
# `{street}` and `{cross}` come from the request's location. Variety on purpose: terse, chatty,
# lower case, missing punctuation, as residents really write.

COMMON_SLOTS: Final[dict[str, tuple[str, ...]]] = {
    "since": (
        "since last week", "for a few days now", "for over a month", "since Monday",
        "since the storm", "for two weeks", "since yesterday", "for ages",
    ),
    "urgency": (
        "Please fix it.", "Someone is going to get hurt.", "Thanks.", "Please send someone.",
        "This is the third time I report this.", "Thank you!", "", "",
    ),
    "landmark": LANDMARKS,
}  # fmt: skip

SLOT_VALUES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "POTHOLE": {
        "size": ("about a foot wide", "huge", "really deep", "the size of a manhole",
                 "small but deep", "several"),
        "lane": ("in the right lane", "in the middle of the road", "by the crosswalk",
                 "at the curb", "in the bike lane"),
    },
    "STREETLIGHT": {
        "state": ("out", "flickering", "on all day", "completely dark", "buzzing and going off"),
        "pole": ("", "Pole number 4471.", "pole # RL-2290", "The pole has a tag 1187."),
    },
    "GRAFFITI": {
        "surface": ("the bus shelter", "the bridge underpass", "a mailbox", "the park wall",
                    "the side of the library", "a utility box", "the school fence"),
        "kind": ("tags", "spray paint", "offensive words", "a big mural-style tag", "stickers"),
    },
    "MISSED_COLLECTION": {
        "stream": ("trash", "recycling", "yard waste", "trash and recycling"),
        "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "yesterday", "today"),
    },
    "BULKY_WASTE": {
        "items": ("an old couch", "a mattress and box spring", "a fridge", "two armchairs",
                  "a broken dresser", "a washing machine", "a sofa bed and a table"),
    },
    "NOISE": {
        "source": ("loud music", "a party", "a barking dog", "construction before 7am",
                   "a car alarm", "people yelling", "a leaf blower", "bass from a car"),
        "when": ("every night", "until 3am", "right now", "all weekend", "since 11pm"),
    },
    "ILLEGAL_DUMPING": {
        "items": ("tires", "construction debris", "a pile of trash bags", "an old TV",
                  "a mattress", "paint cans", "furniture"),
    },
    "TREE": {
        "problem": ("a large branch is hanging over the sidewalk", "the tree fell on the road",
                    "the tree looks dead", "roots are lifting the sidewalk",
                    "a limb is resting on the wires", "the tree is leaning toward the house",
                    "branches block the stop sign"),
    },
    "ABANDONED_VEHICLE": {
        "vehicle": ("a grey Honda Civic", "a white van", "a black SUV", "a red pickup",
                    "a blue Toyota", "a silver sedan", "a car with flat tires"),
        "weeks": ("two weeks", "a month", "10 days", "three weeks", "over a week"),
    },
    "SNOW_ICE": {
        "problem": ("the street hasn't been plowed", "the sidewalk is a sheet of ice",
                    "the plow blocked the crosswalk", "nobody shoveled the corner",
                    "the hill is too icy to drive", "the bus stop is buried in snow"),
    },
    "LEAF_COLLECTION": {
        "bags": ("ten bags", "a dozen bags", "a big pile", "20 bags", "some bags"),
    },
    "OVERGROWN": {
        "place": ("the vacant lot", "the median strip", "the park edge", "the traffic island",
                  "the sidewalk strip"),
        "height": ("knee high", "waist high", "covering the sidewalk", "blocking the sign"),
    },
    "SIDEWALK": {
        "problem": ("a raised slab", "a big crack", "a missing chunk", "a broken curb ramp",
                    "a sunken section"),
    },
    "TRAFFIC_SIGNAL": {
        "problem": ("is dark", "is stuck on red", "is flashing yellow", "has a very short "
                    "walk signal", "push button doesn't work", "turned the wrong way"),
    },
    "STORM_DRAIN": {
        "problem": ("is clogged with leaves", "is overflowing", "has no grate",
                    "smells terrible", "floods the whole corner when it rains"),
    },
    "DEAD_ANIMAL": {
        "animal": ("a raccoon", "a deer", "a skunk", "a squirrel", "an opossum", "a cat",
                   "a bird"),
    },
    "RODENT": {
        "where": ("in the alley", "around the dumpsters", "in the park", "by the restaurant",
                  "under the porch next door"),
        "count": ("a rat", "several rats", "rats every evening", "burrows and rats"),
    },
}  # fmt: skip

TEMPLATES: Final[dict[str, tuple[str, ...]]] = {
    "POTHOLE": (
        "Pothole {lane} in front of {addr}, {size}. {urgency}",
        "{size} pothole on {street} near {cross}. Hit it with my car {since}.",
        "pothole {street} & {cross}",
        "There is a pothole {lane} on {street} by {landmark}. {urgency}",
        "Multiple potholes on {street} between {cross} and the next block, {size}.",
        "Blew a tire on a pothole outside {addr}. {urgency}",
    ),
    "STREETLIGHT": (
        "Streetlight {state} in front of {addr}. {pole}",
        "The light at {street} and {cross} is {state} {since}. {urgency}",
        "street light {state} near {landmark} on {street}",
        "Whole block of {street} is dark, lights {state}. {pole} {urgency}",
    ),
    "GRAFFITI": (
        "Graffiti ({kind}) on {surface} at {street} and {cross}.",
        "Someone sprayed {kind} on {surface} near {addr}. {urgency}",
        "graffiti on {surface} by {landmark}",
        "New {kind} on {surface} on {street}, appeared {since}.",
    ),
    "MISSED_COLLECTION": (
        "My {stream} was not picked up {day}. Address {addr}.",
        "{stream} missed again on {street}. {urgency}",
        "Whole street missed for {stream} pickup on {day} ({street}).",
        "missed {stream} {addr}",
        "Bins were out by 6am at {addr} but the {stream} truck never came {day}.",
    ),
    "BULKY_WASTE": (
        "Please pick up {items} at {addr}.",
        "Need a bulky pickup for {items}. Will be at the curb on {street}.",
        "bulky item pickup: {items}, {addr}",
        "Moving out, can you collect {items} from {addr}? {urgency}",
    ),
    "NOISE": (
        "{source} at {addr} {when}. {urgency}",
        "Noise complaint: {source} on {street} near {cross}, {when}.",
        "Can't sleep because of {source} {when}, somewhere on {street}.",
        "noise {street} {source}",
        "Neighbors at {addr} have {source} {when}. This has been going on {since}.",
    ),
    "ILLEGAL_DUMPING": (
        "Someone dumped {items} at {street} and {cross}.",
        "{items} dumped behind {landmark} on {street}. {urgency}",
        "illegal dumping {items} near {addr}",
        "Truck dropped {items} on the sidewalk outside {addr} last night.",
    ),
    "TREE": (
        "Street tree at {addr}: {problem}. {urgency}",
        "On {street} near {cross}, {problem}.",
        "tree issue at {addr}, {problem}",
        "After the wind {problem} in front of {addr}. {urgency}",
    ),
    "ABANDONED_VEHICLE": (
        "{vehicle} has been parked at {addr} for {weeks}, hasn't moved.",
        "Abandoned car on {street} near {cross}: {vehicle}, there {since}.",
        "{vehicle} with expired registration on {street} for {weeks}. {urgency}",
        "abandoned vehicle {addr}",
    ),
    "SNOW_ICE": (
        "{problem} on {street}. {urgency}",
        "At {street} and {cross} {problem}.",
        "{problem} near {landmark} ({street}), kids walk here. {urgency}",
        "snow {street} not plowed",
    ),
    "LEAF_COLLECTION": (
        "{bags} of leaves at the curb at {addr} for pickup.",
        "Leaf pile in the street on {street} blocking the drain near {cross}.",
        "leaf pickup {addr}",
        "Leaves bagged and out {since} at {addr}, still not collected.",
    ),
    "OVERGROWN": (
        "Grass on {place} at {street} and {cross} is {height}.",
        "Weeds {height} on {place} near {addr}. {urgency}",
        "overgrown {place} {street}",
    ),
    "SIDEWALK": (
        "{problem} in the sidewalk at {addr}, a trip hazard. {urgency}",
        "Sidewalk on {street} near {cross} has {problem}. My mother tripped there.",
        "damaged sidewalk {addr}",
    ),
    "TRAFFIC_SIGNAL": (
        "Traffic light at {street} and {cross} {problem}. {urgency}",
        "The signal by {landmark} on {street} {problem}.",
        "signal {street}/{cross} {problem}",
    ),
    "STORM_DRAIN": (
        "Storm drain at {street} and {cross} {problem}.",
        "The catch basin outside {addr} {problem}. {urgency}",
        "drain {problem} near {landmark}",
    ),
    "DEAD_ANIMAL": (
        "There is {animal} dead in the road on {street} near {cross}.",
        "Found {animal} dead on the sidewalk outside {addr}. {urgency}",
        "dead animal {street} ({animal})",
    ),
    "RODENT": (
        "Seeing {count} {where} near {addr}.",
        "Rat problem {where} on {street}, {since}. {urgency}",
        "rodents {street} {where}",
    ),
}

OPENERS: Final = ("", "", "", "", "Hi, ", "Hello, ", "Hi there. ", "Good morning, ", "URGENT: ")

# Personal data that residents put into free text, for the privacy scrubber to find. Each entry
# is (template, kinds it contains). `{first}`, `{last}`, `{phone}`, `{email}`, `{plate}` are
# filled by the generator.
PII_SNIPPETS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (" Call me at {phone}.", ("phone",)),
    (" My cell is {phone} if you need access.", ("phone",)),
    (" You can reach me at {email}.", ("email",)),
    (" Please email {email} when it is done.", ("email",)),
    (" - {first} {last}", ("name",)),
    (" My neighbor {first} {last} says the same.", ("name",)),
    (" I'm {first} {last}, call {phone}.", ("name", "phone")),
    (" Thanks, {first} {last} ({email})", ("name", "email")),
    (" It's {first} {last}'s house that causes this.", ("name",)),
)
PLATE_SNIPPETS: Final = (" Plate {plate}.", " License plate {plate}.", " MA plate {plate}")

STATUS_NOTES: Final[dict[str, tuple[str, ...]]] = {
    "resolved": (
        "Work completed.", "Crew completed the repair.", "Resolved, thank you for reporting.",
        "Done.", "Completed by field crew.", "Issue addressed on site.",
    ),
    "duplicate": ("Duplicate of an earlier report; following up there.",),
    "no_action_needed": (
        "Inspected: no issue found.", "Could not locate the problem at this address.",
        "Inspected: not a city responsibility, owner notified.",
    ),
    "referred": (
        "Referred to the utility company.", "Referred to the state highway department.",
        "Forwarded to the property owner.",
    ),
}  # fmt: skip

STAFF_TITLES: Final[dict[str, tuple[str, ...]]] = {
    "admin": ("IT systems administrator", "Chief information officer"),
    "publisher": ("Open data coordinator", "GIS analyst", "Data analyst"),
    "manager": ("Office manager", "Operations supervisor", "Division director"),
    "staff": ("Customer service representative", "Case worker", "Field inspector",
              "Dispatcher", "Permit technician", "Clerk"),
    "partner": ("Contract arborist", "Contract hauler dispatcher"),
}  # fmt: skip

PARTNERS: Final = (
    # (organisation, email domain, office role it works for)
    ("Greenleaf Tree Care", "greenleaf.example.com", "parks-forestry"),
    ("Valley Hauling Co.", "valleyhauling.example.com", "public-works-yard"),
)

# --- Open datasets: metadata and Table Schema columns (name, type, description) ----------------
# `theme` is a DCAT-AP data theme code (EU vocabulary); `license_id` an SPDX identifier.

DATASETS: Final[tuple[dict[str, Any], ...]] = (
    {
        "slug": "district-population",
        "title": "Population by district",
        "description": "Residents, households, land area and median household income of each "
        "district, from the annual city census.",
        "keywords": ("population", "census", "districts", "households", "income"),
        "license_id": "CC-BY-4.0",
        "theme": "SOCI",
        "frequency": "annual",
        "publisher": "city-hall",
        "columns": (
            ("district_code", "string", "District code, as in the boundaries file"),
            ("district_name", "string", "District name"),
            ("year", "integer", "Census year"),
            ("population", "integer", "Residents"),
            ("households", "integer", "Households"),
            ("area_km2", "number", "Land area in square kilometres"),
            ("density_per_km2", "number", "Residents per square kilometre"),
            ("median_household_income", "integer", "Median household income, USD"),
        ),
    },
    {
        "slug": "street-trees",
        "title": "Street tree inventory",
        "description": "Every tree the city maintains along streets: species, trunk diameter, "
        "planting year where known and last assessed condition.",
        "keywords": ("trees", "urban forest", "environment", "canopy", "parks"),
        "license_id": "CC0-1.0",
        "theme": "ENVI",
        "frequency": "monthly",
        "publisher": "parks-forestry",
        "columns": (
            ("tree_id", "string", "Inventory number"),
            ("address", "string", "Nearest street address"),
            ("species_common", "string", "Common name"),
            ("species_scientific", "string", "Scientific name"),
            ("dbh_cm", "integer", "Trunk diameter at breast height, cm"),
            ("planted_year", "integer", "Year planted; empty when unknown"),
            ("condition", "string", "good | fair | poor | dead"),
            ("district_code", "string", "District code"),
            ("lat", "number", "Latitude (WGS 84)"),
            ("lon", "number", "Longitude (WGS 84)"),
        ),
    },
    {
        "slug": "public-toilets",
        "title": "Public toilets",
        "description": "Toilets open to the public in city buildings, libraries, parks and the "
        "train station, with accessibility and opening hours.",
        "keywords": ("toilets", "restrooms", "accessibility", "amenities", "parks"),
        "license_id": "ODbL-1.0",
        "theme": "HEAL",
        "frequency": "irregular",
        "publisher": "parks-forestry",
        "columns": (
            ("toilet_id", "string", "Identifier"),
            ("name", "string", "Name"),
            ("location_type", "string", "office | library | park | transit"),
            ("address", "string", "Street address"),
            ("district_code", "string", "District code"),
            ("lat", "number", "Latitude (WGS 84)"),
            ("lon", "number", "Longitude (WGS 84)"),
            ("wheelchair_accessible", "boolean", "Step-free with an accessible cubicle"),
            ("baby_changing", "boolean", "Baby changing table"),
            ("opening_hours", "string", "OpenStreetMap opening_hours syntax"),
            ("fee_cents", "integer", "Charge per use in US cents"),
        ),
    },
    {
        "slug": "budget-by-district",
        "title": "Operating budget by district",
        "description": "Adopted operating budget for district-level services, by fiscal year "
        "(July to June) and category, in US dollars.",
        "keywords": ("budget", "finance", "spending", "districts", "fiscal year"),
        "license_id": "CC-BY-4.0",
        "theme": "ECON",
        "frequency": "annual",
        "publisher": "city-hall",
        "columns": (
            ("fiscal_year", "string", "Fiscal year, named after the June it ends in"),
            ("district_code", "string", "District code"),
            ("district_name", "string", "District name"),
            ("category", "string", "Budget category"),
            ("amount_usd", "integer", "Adopted amount, USD"),
        ),
    },
    {
        "slug": "office-locations",
        "title": "City office locations and opening hours",
        "description": "Where to find city offices that serve the public, and when they are open.",
        "keywords": ("offices", "opening hours", "city hall", "locations", "services"),
        "license_id": "CC0-1.0",
        "theme": "GOVE",
        "frequency": "irregular",
        "publisher": "city-hall",
        "columns": (
            ("office_slug", "string", "Identifier"),
            ("name", "string", "Name"),
            ("kind", "string", "city_hall | service_center | permit_office | depot | parks"),
            ("address", "string", "Street address"),
            ("postal_code", "string", "ZIP code"),
            ("district_code", "string", "District code"),
            ("lat", "number", "Latitude (WGS 84)"),
            ("lon", "number", "Longitude (WGS 84)"),
            ("phone", "string", "Phone"),
            ("email", "string", "Email"),
            ("opening_hours", "string", "OpenStreetMap opening_hours syntax"),
            ("wheelchair_accessible", "boolean", "Step-free access"),
        ),
    },
)

BUDGET_LINES: Final = (
    # (category, USD per resident, USD per km2)
    ("Roads & sidewalks", 95, 420_000),
    ("Parks & trees", 38, 160_000),
    ("Waste collection", 120, 0),
    ("Street lighting", 14, 90_000),
    ("Libraries & community centers", 42, 0),
    ("Code enforcement", 18, 0),
)

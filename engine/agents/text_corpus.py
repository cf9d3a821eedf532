"""Synthetic text corpora with known labels: product reviews (sentiment) and customer-service
requests (intent plus entity spans). Generated from templates with a seed; everything here is
synthetic and labelled so wherever it is shown.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

SENTIMENTS = ("negative", "neutral", "positive")
INTENTS = ("account", "billing", "cancel", "refund", "shipping", "technical")
ENTITY_TYPES = ("AMOUNT", "DATE", "EMAIL", "ORDER", "PRODUCT")

PRODUCTS = (
    "phone", "laptop", "headphones", "camera", "blender", "coffee maker", "vacuum cleaner",
    "smart watch", "tablet", "keyboard", "monitor", "router", "speaker", "charger", "backpack",
    "desk lamp", "printer", "microwave", "jacket", "running shoes", "wireless earbuds",
    "gaming mouse", "electric kettle", "air fryer", "e-reader", "fitness tracker",
)
ASPECTS = (
    "battery", "screen", "sound", "design", "delivery", "price", "quality", "service", "packaging",
    "build", "performance", "fit", "material", "setup", "support", "size", "colour", "app",
)
POS_ADJ = (
    "good", "great", "excellent", "amazing", "fantastic", "wonderful", "superb", "brilliant",
    "perfect", "outstanding", "impressive", "lovely", "solid", "reliable", "fast", "comfortable",
    "beautiful", "awesome", "nice", "terrific",
)
NEG_ADJ = (
    "bad", "terrible", "awful", "horrible", "poor", "disappointing", "useless", "broken", "cheap",
    "flimsy", "slow", "faulty", "mediocre", "dreadful", "annoying", "unreliable", "noisy", "ugly",
    "uncomfortable", "defective",
)
NEUTRAL_ADJ = ("okay", "average", "acceptable", "standard", "ordinary", "adequate", "fine")
INTENSIFIERS = ("", "", "really", "very", "truly", "extremely", "quite", "absolutely", "so")
POS_VERBS = ("love", "adore", "like", "enjoy", "recommend", "appreciate")
NEG_VERBS = ("hate", "dislike", "regret buying", "despise", "returned")
COLOURS = ("black", "white", "blue", "red", "grey", "green", "silver")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
NAMES = ("john", "maria", "li.wei", "sam", "a.khan", "julia", "omar", "nina", "pat", "alex")
DOMAINS = ("example.com", "mail.net", "inbox.org", "post.co.uk", "webmail.de")

_POSITIVE = (
    "I {pv} this {p}.", "The {a} is {i} {pa}.", "{I} {pa} {p}!", "What a {pa} {p}.",
    "The {a} is not {na} at all.", "This {p} is {i} {pa} and the {a} is {pa}.",
    "I would definitely recommend this {p}.", "Absolutely worth the money, {pa} {a}.",
    "The {p} works perfectly.", "Never had a problem with this {p}, {pa} {a}.",
    "I am very happy with the {a}.", "Best {p} I have ever owned.",
    "The {a} is {pa}, I {pv} it.", "No complaints, the {p} is {pa}.",
)
_NEGATIVE = (
    "I {nv} this {p}.", "The {a} is {i} {na}.", "{I} {na} {p}.", "What a {na} {p}.",
    "The {a} is not {pa} at all.", "This {p} is {i} {na} and the {a} is {na}.",
    "I would never recommend this {p}.", "A waste of money, {na} {a}.",
    "The {p} stopped working after two days.", "The {a} is not {pa}, very {na}.",
    "I am very unhappy with the {a}.", "Worst {p} I have ever owned.",
    "The {a} is {na}, I {nv} it.", "Do not buy this {p}, the {a} is {na}.",
)
_NEUTRAL = (
    "The {p} arrived on {d}.", "It is a {c} {p} with a {a}.", "The {a} is {ta}.",
    "I bought this {p} last week.", "The {p} comes in a {c} box.", "The {a} is as described.",
    "It is a {p}.", "The {p} is {ta}, nothing special.", "I received the {p} on {d}.",
    "The {a} is neither good nor bad.", "It does what it says, the {a} is {ta}.",
    "The {p} is {c}.", "My {p} was delivered on {d} in a {c} box.",
)


def generate_reviews(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` synthetic product reviews with their sentiment, balanced over the three classes."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        label = SENTIMENTS[k % 3]
        template = rng.choice({"positive": _POSITIVE, "negative": _NEGATIVE,
                               "neutral": _NEUTRAL}[label])
        intens = rng.choice(INTENSIFIERS)
        text = template.format(
            p=rng.choice(PRODUCTS), a=rng.choice(ASPECTS), pa=rng.choice(POS_ADJ),
            na=rng.choice(NEG_ADJ), ta=rng.choice(NEUTRAL_ADJ), i=intens, pv=rng.choice(POS_VERBS),
            nv=rng.choice(NEG_VERBS), c=rng.choice(COLOURS), d=rng.choice(DAYS),
            I=(intens or "a").capitalize() if intens else "A",
        )
        text = re.sub(r"\s+", " ", text).strip()
        if rng.random() < 0.3:
            text = text.lower()
        out.append((text, label))
    rng.shuffle(out)
    return out


_REQUESTS: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged {amount} twice for order {order}.",
        "Why is there a charge of {amount} on my card from {date}?",
        "My invoice for order {order} shows {amount} but the price was lower.",
        "Please explain the payment of {amount} taken on {date}.",
        "I was billed {amount} for the {product} I never ordered.",
        "The bill sent to {email} has the wrong amount.",
        "Send the corrected invoice for {amount} to {email} and explain the charge.",
    ),
    "technical": (
        "My {product} will not turn on since {date}.",
        "The {product} keeps crashing when I open the app.",
        "I cannot connect my {product} to wifi, error after the update.",
        "The {product} from order {order} makes a strange noise.",
        "Screen of my {product} is flickering, how do I fix it?",
        "The {product} stopped charging, please help me troubleshoot.",
        "I use {email} for the app and the {product} shows an error on {date}.",
    ),
    "cancel": (
        "Please cancel order {order}.",
        "I want to cancel my subscription before {date}.",
        "Cancel the {product} I ordered, order {order}.",
        "How do I cancel my account plan? My email is {email}.",
        "I changed my mind, please cancel the order {order} for the {product}.",
        "Stop my membership renewal on {date}.",
        "My login is {email} and I want to cancel the plan from {date}.",
    ),
    "refund": (
        "I want a refund of {amount} for order {order}.",
        "The {product} was damaged, I would like my money back.",
        "When will I get my refund for the {product}? I returned it on {date}.",
        "Please refund {amount} to my card.",
        "I sent back order {order} and still have no refund.",
        "Return the {product} and give me a full refund please.",
        "Email {email} when the refund of {amount} for the {product} is done.",
    ),
    "shipping": (
        "Where is my order {order}? It should have arrived on {date}.",
        "My {product} has not been delivered yet.",
        "Can you tell me the tracking status of order {order}?",
        "The package with my {product} is late, expected {date}.",
        "Delivery of order {order} is delayed, when will it ship?",
        "The courier left my parcel at the wrong address.",
        "Contact me at {email} about the delivery of order {order} please.",
    ),
    "account": (
        "I cannot log in to my account with {email}.",
        "Please change the email on my account to {email}.",
        "I forgot my password and the reset mail never came to {email}.",
        "How do I update my address and phone number in my profile?",
        "My account was locked after too many login attempts.",
        "Please delete my account and personal data, email {email}.",
        "My email is {email} and I cannot reset my password.",
    ),
}
_PREFIXES = ("", "", "Hi, ", "Hello, ", "Good morning, ", "Hey there. ", "Dear support, ")
_SUFFIXES = ("", "", " Thanks.", " Thank you!", " Please help.", " This is urgent.", " Regards.")


@dataclass
class Request:
    """A synthetic customer-service request with its intent and entity spans (char offsets)."""

    text: str
    intent: str
    entities: list[tuple[int, int, str]] = field(default_factory=list)


def _entity_value(kind: str, rng: random.Random) -> str:
    if kind == "ORDER":
        digits = str(rng.randint(10000, 999999))
        return rng.choice((f"#{digits}", f"ORD-{digits}", f"A{digits}{rng.randint(0, 9)}"))
    if kind == "DATE":
        month, day, year = rng.choice(MONTHS), rng.randint(1, 28), rng.randint(2021, 2026)
        m = MONTHS.index(month) + 1
        return rng.choice((f"{month} {day}", f"{day} {month}", f"{month} {day}, {year}",
                           f"{year}-{m:02d}-{day:02d}", f"{day:02d}/{m:02d}/{year}"))
    if kind == "AMOUNT":
        value = rng.choice((f"{rng.randint(5, 900)}.{rng.randint(0, 99):02d}",
                            str(rng.randint(5, 2000))))
        return rng.choice((f"${value}", f"€{value}", f"£{value}", f"{value} dollars",
                           f"{value} EUR", f"{value} USD"))
    if kind == "EMAIL":
        return f"{rng.choice(NAMES)}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}"
    return rng.choice(PRODUCTS)


def fill_request(template: str, intent: str, rng: random.Random) -> Request:
    """Fill a template's ``{slot}`` placeholders, recording each entity's character span."""
    text, spans, pos = "", [], 0
    for match in re.finditer(r"\{(\w+)\}", template):
        text += template[pos:match.start()]
        kind = match.group(1).upper()
        value = _entity_value(kind, rng)
        spans.append((len(text), len(text) + len(value), kind))
        text += value
        pos = match.end()
    text += template[pos:]
    prefix, suffix = rng.choice(_PREFIXES), rng.choice(_SUFFIXES)
    spans = [(s + len(prefix), e + len(prefix), k) for s, e, k in spans]
    return Request(prefix + text + suffix, intent, spans)


def generate_requests(n: int, seed: int = 0) -> list[Request]:
    """``n`` synthetic customer-service requests, balanced over the intents."""
    rng = random.Random(seed)
    out = [fill_request(rng.choice(_REQUESTS[INTENTS[k % len(INTENTS)]]), INTENTS[k % len(INTENTS)],
                        rng) for k in range(n)]
    rng.shuffle(out)
    return out


# Hand-written sentences that no template produces: a small check of generalisation beyond the
# templates (reported in the model cards next to the template held-out figure).
CHALLENGE_REVIEWS: tuple[tuple[str, str], ...] = (
    ("I love it, the quality is excellent!", "positive"),
    ("Fantastic headphones, the sound is amazing.", "positive"),
    ("The delivery was not bad at all.", "positive"),
    ("Great value, I really enjoy using this tablet.", "positive"),
    ("Superb build and a beautiful design.", "positive"),
    ("This camera is perfect for travel.", "positive"),
    ("Highly recommend, works perfectly.", "positive"),
    ("Comfortable running shoes, very happy.", "positive"),
    ("This is terrible, I hate it.", "negative"),
    ("The battery is not good.", "negative"),
    ("Awful service and a broken charger.", "negative"),
    ("The screen is defective and the support was useless.", "negative"),
    ("I regret buying this laptop, it is so slow.", "negative"),
    ("Cheap, flimsy material, very disappointing.", "negative"),
    ("The speaker is noisy and unreliable.", "negative"),
    ("Never buying this brand again, horrible quality.", "negative"),
    ("The package arrived on Monday.", "neutral"),
    ("It is a black keyboard.", "neutral"),
    ("The router comes in a white box.", "neutral"),
    ("I received the printer on Friday.", "neutral"),
    ("The size is average.", "neutral"),
    ("The jacket is blue.", "neutral"),
    ("It does what it says.", "neutral"),
    ("The price is okay, nothing special.", "neutral"),
)
CHALLENGE_REQUESTS: tuple[tuple[str, str], ...] = (
    ("Your company charged my card twice this month.", "billing"),
    ("There is a wrong amount on my invoice.", "billing"),
    ("The payment of $20 on my bill looks wrong.", "billing"),
    ("My laptop does not turn on anymore.", "technical"),
    ("The app keeps crashing after the update.", "technical"),
    ("I cannot connect the printer to wifi.", "technical"),
    ("Please cancel my subscription.", "cancel"),
    ("I no longer want order #55123, cancel it.", "cancel"),
    ("I want to cancel the membership.", "cancel"),
    ("I returned the blender, where is my refund?", "refund"),
    ("Please give me my money back for the damaged camera.", "refund"),
    ("I would like a full refund.", "refund"),
    ("My parcel is late, where is it?", "shipping"),
    ("What is the tracking status of my package?", "shipping"),
    ("The delivery has not arrived yet.", "shipping"),
    ("I forgot my password.", "account"),
    ("Please update the email on my profile.", "account"),
    ("I cannot log in to my account.", "account"),
)

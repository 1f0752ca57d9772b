"""Documents the integration tests ingest."""

from __future__ import annotations

import random
import uuid


def unique(prefix: str) -> str:
    """A name no other test (or earlier run against the same database) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


TOPICS = [
    ("volcano", "Volcanoes erupt molten rock called lava, along with ash and gas."),
    ("bees", "Honey bees collect nectar from flowers and turn it into honey in the hive."),
    ("chess", "In chess the bishop moves diagonally and the knight jumps in an L shape."),
    ("tides", "Ocean tides rise and fall because of the gravitational pull of the moon."),
    ("bread", "Bakers knead dough with yeast so that bread rises before it is baked."),
    ("jazz", "Jazz musicians improvise solos over swinging rhythms and blue notes."),
    ("glacier", "Glaciers are slow rivers of ice that carve valleys into mountains."),
    ("python", "Python is a programming language known for readable code and indentation."),
    ("mars", "Mars is the red planet, with dusty plains and the giant volcano Olympus Mons."),
    ("coffee", "Coffee beans are roasted and ground before brewing a hot drink."),
    ("tennis", "Tennis players serve and volley across a net on grass or clay courts."),
    ("photosynthesis", "Plants use sunlight, water and carbon dioxide to make sugar in photosynthesis."),
    ("vaccine", "Vaccines train the immune system to recognise a virus before an infection."),
    ("bridge", "Suspension bridges hang their deck from steel cables slung between towers."),
    ("origami", "Origami is the Japanese art of folding paper into birds and flowers."),
    ("penguin", "Penguins are flightless birds that swim in the cold seas of Antarctica."),
    ("violin", "The violin is a string instrument played with a bow made of horsehair."),
    ("desert", "Deserts receive very little rain, and cacti store water in their stems."),
    ("bitcoin", "Bitcoin is a digital currency recorded on a public blockchain ledger."),
    ("marathon", "A marathon is a long-distance running race of about forty-two kilometres."),
]


WORDS = (
    "time year people way day man thing woman life child world school state family "
    "student group country problem hand part place case week company system program "
    "question work government number night point home water room mother area money "
    "story fact month lot right study book eye job word business issue side kind head "
    "house service friend father power hour game line end member law car city name"
).split()


def large_corpus(n: int) -> list[dict]:
    rng = random.Random(7)
    return [
        {"id": f"doc-{i}", "text": f"Document {i}. " + " ".join(rng.choice(WORDS) for _ in range(80))} for i in range(n)
    ]

"""A generated demo catalog: films in eight genres, and users who each favour one or two.

Everything is made here from a fixed seed, so it may be shipped and gives the same data on
every machine. Titles are built from genre word lists, so similar items share real words.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

GENRES: dict[str, dict[str, Any]] = {
    "Horror": {
        "words": [
            "Haunting",
            "Crypt",
            "Shadows",
            "Bloodline",
            "Possession",
            "Nightmare",
            "Graveyard",
            "Curse",
            "Witching Hour",
            "Hollow",
        ],
        "tags": ["horror", "supernatural", "ghosts", "slasher", "dark", "creepy"],
        "blurb": "A terrifying tale of dread where something evil stalks the night.",
    },
    "Comedy": {
        "words": [
            "Wedding",
            "Road Trip",
            "Roommates",
            "Office Party",
            "Blunder",
            "Family Reunion",
            "Pranksters",
            "Holiday",
            "Mix-Up",
            "Misfits",
        ],
        "tags": ["comedy", "funny", "feel-good", "slapstick", "witty", "romcom"],
        "blurb": "A hilarious romp full of mishaps, jokes and awkward situations.",
    },
    "Sci-Fi": {
        "words": [
            "Starship",
            "Android",
            "Quantum",
            "Colony",
            "Nebula",
            "Time Loop",
            "Cyborg",
            "Orbit",
            "Singularity",
            "Exoplanet",
        ],
        "tags": ["science fiction", "space", "future", "robots", "aliens", "dystopia"],
        "blurb": "In a distant future, explorers face the unknown among the stars.",
    },
    "Romance": {
        "words": [
            "Love Letters",
            "Summer Kiss",
            "Heartstrings",
            "Promise",
            "Paris",
            "Second Chance",
            "Moonlight",
            "Sweetheart",
            "Serenade",
            "Vows",
        ],
        "tags": ["romance", "love", "drama", "relationships", "heartwarming", "couples"],
        "blurb": "Two hearts find each other against the odds in a tender love story.",
    },
    "Documentary": {
        "words": [
            "Oceans",
            "Mountains",
            "Inside",
            "Chronicles",
            "Wildlife",
            "Rivers",
            "The Making of",
            "Frontiers",
            "Ancient Cities",
            "Climate",
        ],
        "tags": ["documentary", "nature", "history", "true story", "science", "society"],
        "blurb": "A true account that explores the real world with remarkable footage.",
    },
    "Animation": {
        "words": [
            "Little Dragon",
            "Toy Kingdom",
            "Magic Forest",
            "Robot Pals",
            "Penguins",
            "Sky Pirates",
            "Bunny Tales",
            "Snow Friends",
            "Puppy Quest",
            "Cloud Castle",
        ],
        "tags": ["animation", "family", "kids", "cartoon", "adventure", "musical"],
        "blurb": "An animated family adventure with colourful friends and catchy songs.",
    },
    "Thriller": {
        "words": [
            "Conspiracy",
            "Double Cross",
            "Hostage",
            "Manhunt",
            "Cipher",
            "Alibi",
            "Blackout",
            "Safehouse",
            "Witness",
            "Deadline",
        ],
        "tags": ["thriller", "suspense", "crime", "mystery", "spy", "heist"],
        "blurb": "A tense race against time as a detective uncovers a deadly conspiracy.",
    },
    "Western": {
        "words": [
            "Outlaw",
            "Frontier Town",
            "Gunslinger",
            "Dust",
            "Ranch",
            "Sheriff",
            "Canyon",
            "Stagecoach",
            "Bounty",
            "Prairie",
        ],
        "tags": ["western", "cowboys", "frontier", "horses", "gunfight", "desert"],
        "blurb": "On the lawless frontier, a lone rider seeks justice in a dusty town.",
    },
}
QUALIFIERS = [
    "The",
    "Return of the",
    "Last",
    "Secret",
    "Beyond the",
    "Night of the",
    "Rise of the",
    "A",
    "Tales of the",
    "Legend of the",
]
SUFFIXES = ["", " II", " III", ": Reborn", ": The Beginning", " Forever", " Origins", ""]
TYPES = [
    ("view", 0.5),
    ("click", 0.2),
    ("like", 0.12),
    ("rating", 0.1),
    ("purchase", 0.05),
    ("superlike", 0.03),
]


def catalog(items_per_genre: int = 50, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    items = []
    for genre, spec in GENRES.items():
        for n in range(items_per_genre):
            title = f"{rng.choice(QUALIFIERS)} {rng.choice(spec['words'])}{rng.choice(SUFFIXES)}"
            items.append(
                {
                    "item_id": f"{genre.lower().replace('-', '')}-{n:03d}",
                    "title": title.strip(),
                    "description": spec["blurb"],
                    "category": genre,
                    "tags": rng.sample(spec["tags"], 3),
                    "attributes": {
                        "year": rng.randint(1960, 2025),
                        "minutes": rng.randint(80, 170),
                    },
                    "published_at": (start + timedelta(days=rng.randint(0, 2000))).isoformat(),
                }
            )
    return items


def interactions(
    items: list[dict[str, Any]], users: int = 200, seed: int = 11
) -> list[dict[str, Any]]:
    """Each user mostly picks items of their favourite genres, sometimes anything."""
    rng = random.Random(seed)
    by_genre: dict[str, list[str]] = {}
    for item in items:
        by_genre.setdefault(item["category"], []).append(item["item_id"])
    everything = [item["item_id"] for item in items]
    genres = list(by_genre)
    now = datetime.now(UTC)
    kinds, weights = zip(*TYPES, strict=True)
    rows = []
    for u in range(users):
        favourites = rng.sample(genres, rng.choice([1, 1, 2]))
        for e in range(rng.randint(5, 60)):
            pool = by_genre[rng.choice(favourites)] if rng.random() < 0.85 else everything
            kind = rng.choices(kinds, weights)[0]
            row = {
                "user_id": f"user-{u:04d}",
                "item_id": rng.choice(pool),
                "type": kind,
                "timestamp": (now - timedelta(hours=rng.uniform(0, 24 * 60))).isoformat(),
                "event_id": f"demo-{u:04d}-{e:03d}",
            }
            if kind == "rating":
                row["value"] = rng.choice([3, 4, 4, 5, 5])
            rows.append(row)
    return rows

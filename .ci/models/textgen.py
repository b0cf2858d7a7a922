"""Deterministic composed English text in four registers, for benchmark and
fine-tuning data. Everything here is generated from small word banks with a
seeded random.Random: no copied text. Used by make-bench-texts.py and
make-finetune-sample.py.
"""
import random

NAMES = ["Ada", "Bram", "Chiara", "Dev", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonah",
         "Kasia", "Luis", "Mina", "Nils", "Oona", "Pavel", "Rosa", "Sami", "Tova", "Wren"]
PLACES = ["the harbour", "the old mill", "the market square", "a hill farm", "the library",
          "the night train", "a fishing village", "the valley road", "the school yard",
          "the bakery", "a lighthouse", "the river bank", "the station cafe", "an orchard"]
OBJECTS = ["a brass key", "a folded letter", "a lantern", "an umbrella", "a map", "a violin",
           "a loaf of bread", "a wooden box", "a red scarf", "a notebook", "a compass", "a kite"]
FEELINGS = ["uneasy", "hopeful", "tired", "curious", "delighted", "homesick", "calm", "restless"]
WEATHER = ["rain drummed on the roof", "the wind came off the sea", "snow softened every sound",
           "the afternoon was hot and still", "fog lay low over the fields", "the sky cleared at dusk"]
TOPICS = ["the timetable", "the broken fence", "tomorrow's exam", "the harvest", "the choir",
          "the new bridge", "a lost dog", "the recipe", "the football match", "the storm"]
SYSTEMS = ["the cache", "the scheduler", "the parser", "the replication log", "the index",
           "the build", "the network layer", "the storage engine", "the tokenizer", "the API server"]
TECH_VERBS = ["flushes", "retries", "validates", "compacts", "serializes", "rebuilds", "batches",
              "evicts", "checksums", "streams"]
TECH_NOUNS = ["each request", "stale entries", "the write-ahead log", "every block", "the manifest",
              "pending jobs", "incoming frames", "the snapshot", "old segments", "the config file"]
DIVINE = ["Lord", "O God", "Holy One", "Maker of all things", "Giver of life", "Shepherd of souls"]
PETITIONS = ["grant us peace in our days", "give us bread for the journey", "keep the sick in your care",
             "forgive what we have done and left undone", "make us gentle with one another",
             "guard the travellers on the road", "teach us to hope", "remember the poor and the stranger"]
PRAISES = ["your mercy endures for ever", "the heavens tell of your glory", "you are our light and our song",
           "your word is a lamp for our feet", "you gather the scattered", "your kindness fills the earth"]


def story(r):
    n, m = r.sample(NAMES, 2)
    out = [f"When {r.choice(WEATHER)}, {n} walked to {r.choice(PLACES)} carrying {r.choice(OBJECTS)}.",
           f"{m} was waiting there, {r.choice(FEELINGS)} and quiet."]
    for _ in range(r.randint(1, 12)):
        out.append(r.choice([
            f"{n} remembered {r.choice(OBJECTS)} left at {r.choice(PLACES)} years ago.",
            f"They talked about {r.choice(TOPICS)} until the lamps were lit.",
            f"Later {r.choice(WEATHER)}, and {m} felt {r.choice(FEELINGS)}.",
            f"Nobody in {r.choice(PLACES)} knew why {n} had come back.",
            f"{m} opened {r.choice(OBJECTS)} and found nothing but dust and a name.",
        ]))
    return " ".join(out)


def dialogue(r):
    a, b = r.sample(NAMES, 2)
    lines = [f"{a}: Did you hear about {r.choice(TOPICS)}?"]
    for _ in range(r.randint(1, 12)):
        who = r.choice([a, b])
        lines.append(f"{who}: " + r.choice([
            f"I think {r.choice(TOPICS)} can wait until Monday.",
            f"Meet me at {r.choice(PLACES)} after lunch.",
            f"Honestly, I'm {r.choice(FEELINGS)} about it.",
            "Can you say that again, slowly?",
            f"Don't forget {r.choice(OBJECTS)}!",
            f"Teacher said we'd read about {r.choice(TOPICS)} next week.",
            "Right, let's do it.",
        ]))
    return " ".join(lines)


def technical(r):
    s = r.choice(SYSTEMS)
    out = [f"Note: {s} {r.choice(TECH_VERBS)} {r.choice(TECH_NOUNS)} every {r.randint(2, 500)} ms."]
    for _ in range(r.randint(1, 12)):
        out.append(r.choice([
            f"If the queue exceeds {r.randint(16, 4096)} items, {r.choice(SYSTEMS)} {r.choice(TECH_VERBS)} {r.choice(TECH_NOUNS)}.",
            f"Set max_retries={r.randint(1, 9)} and timeout_ms={r.randint(100, 9000)} in the config.",
            f"A failed checksum means {r.choice(SYSTEMS)} must rebuild {r.choice(TECH_NOUNS)}.",
            f"Version {r.randint(1, 4)}.{r.randint(0, 20)} changed how {r.choice(SYSTEMS)} handles {r.choice(TECH_NOUNS)}.",
            f"Run `make check` before merging; it {r.choice(TECH_VERBS)} {r.choice(TECH_NOUNS)}.",
        ]))
    return " ".join(out)


def liturgy(r):
    out = [f"{r.choice(DIVINE)}, {r.choice(PRAISES)}."]
    for _ in range(r.randint(1, 10)):
        out.append(r.choice([
            f"{r.choice(DIVINE)}, {r.choice(PETITIONS)}.",
            "Lord, in your mercy, hear our prayer.",
            f"Blessed are you, for {r.choice(PRAISES)}.",
            f"We pray for all who live near {r.choice(PLACES)}: {r.choice(PETITIONS)}.",
        ]))
    out.append("Amen.")
    return " ".join(out)


REGISTERS = {"narrative": story, "conversational": dialogue, "technical": technical, "sacred": liturgy}


def passage(r, register, lo, hi):
    """One passage of the register, lo..hi words (drawn uniformly), cut at a word."""
    gen, want = REGISTERS[register], r.randint(lo, hi)
    words = gen(r).split()
    while len(words) < want:
        words += gen(r).split()
    return " ".join(words[:want])

"""Class names made of words the training captions contain (paper §3.1.4 and Appendix: CLIP's authors rewrote
ImageNet's class names — "crane" the bird vs the machine, WordNet's "nail" — into what people write).

Our labels are emoji-datasource's category ("Animals & Nature") and subcategory ("animal-mammal") ids and
Fashion-MNIST's product names, which the captions hardly ever say. Each label gets a short list of candidate
names, most faithful first, written by hand as the paper's cleaned names were; `choose_classnames` then takes, per
label, the first candidate that at least `min_pictures` training pictures have in a caption (counted on the
training split only), and otherwise the candidate most pictures have. Names stay distinct within a suite: a
candidate another label already took is skipped. What was chosen, and how many training pictures name it, is recorded in
the corpus's suites.json (`classnames`) and, per suite and class, in its name-occurrence record
(`repro.data.vocabulary`), so a reader sees which classes the text encoder could have learnt a word for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

#: Training pictures a candidate's caption count must reach to be preferred over a later candidate.
MIN_PICTURES = 20

CATEGORY_CANDIDATES: dict[str, tuple[str, ...]] = {
    "Smileys & Emotion": ("smiley", "face", "emotion"),
    "People & Body": ("person", "people", "body", "hand"),
    "Animals & Nature": ("animal", "plant", "nature"),
    "Food & Drink": ("food", "drink"),
    "Travel & Places": ("travel", "place", "vehicle", "building"),
    "Activities": ("activity", "sport", "game"),
    "Objects": ("object", "tool", "thing"),
    "Symbols": ("symbol", "sign"),
    "Flags": ("flag",),
}

SUBCATEGORY_CANDIDATES: dict[str, tuple[str, ...]] = {
    "arts & crafts": ("art supplies", "art", "craft"), "award-medal": ("medal", "award", "trophy"),
    "event": ("celebration", "party", "event"), "game": ("game",), "sport": ("sport", "ball"),
    "animal-amphibian": ("amphibian", "frog"), "animal-bird": ("bird",), "animal-bug": ("bug", "insect"),
    "animal-mammal": ("mammal", "animal"), "animal-marine": ("sea animal", "fish", "marine animal"),
    "animal-reptile": ("reptile", "snake", "lizard"), "plant-flower": ("flower",),
    "plant-other": ("plant", "tree", "leaf"), "skin-tone": ("skin tone", "skin"),
    "country-flag": ("country flag", "national flag", "country"), "flag": ("flag",),
    "subdivision-flag": ("regional flag", "region"), "dishware": ("dishware", "tableware", "cutlery", "kitchen"),
    "drink": ("drink", "beverage"), "food-asian": ("asian food", "asian"), "food-fruit": ("fruit",),
    "food-prepared": ("meal", "dish", "food"), "food-sweet": ("dessert", "sweet", "candy"),
    "food-vegetable": ("vegetable",), "book-paper": ("book", "paper", "document"),
    "clothing": ("clothing", "clothes", "garment"), "computer": ("computer",),
    "household": ("household item", "household", "home"), "light & video": ("video", "camera", "light"),
    "lock": ("lock", "key"), "mail": ("mail", "envelope", "letter"), "medical": ("medical", "medicine", "health"),
    "money": ("money",), "music": ("music",), "musical-instrument": ("musical instrument", "instrument"),
    "office": ("office", "stationery"), "other-object": ("object", "thing"), "phone": ("phone", "telephone"),
    "science": ("science",), "sound": ("sound", "speaker", "volume"), "tool": ("tool",),
    "writing": ("writing", "pen", "pencil"), "body-parts": ("body part", "body"), "family": ("family",),
    "hand-fingers-closed": ("fist", "closed hand"), "hand-fingers-open": ("open hand", "hand"),
    "hand-fingers-partial": ("hand sign", "hand gesture", "gesture"), "hand-prop": ("hand holding", "holding"),
    "hand-single-finger": ("pointing finger", "finger", "pointing"), "hands": ("hands", "clapping hands"),
    "person": ("person", "people"), "person-activity": ("person doing an activity", "activity", "walking"),
    "person-fantasy": ("fantasy character", "fairy", "fantasy"), "person-gesture": ("person gesturing", "gesture"),
    "person-resting": ("person resting", "resting", "sleeping"), "person-role": ("profession", "worker", "job"),
    "person-sport": ("athlete", "sport player", "player"), "person-symbol": ("person symbol", "silhouette", "user"),
    "cat-face": ("cat face", "cat"), "emotion": ("emotion", "love"), "face-affection": ("kiss", "affection"),
    "face-concerned": ("worried face", "sad face", "sad"), "face-costume": ("costume", "monster", "ghost"),
    "face-glasses": ("face with glasses", "glasses", "sunglasses"), "face-hand": ("face with hand", "thinking face"),
    "face-hat": ("face with hat", "hat"), "face-negative": ("angry face", "angry"),
    "face-neutral-skeptical": ("neutral face", "skeptical face", "neutral"),
    "face-sleepy": ("sleepy face", "sleeping face", "sleep"), "face-smiling": ("smiling face", "smile", "happy face"),
    "face-tongue": ("face with tongue", "tongue"), "face-unwell": ("sick face", "sick", "ill"), "heart": ("heart",),
    "monkey-face": ("monkey face", "monkey"), "alphanum": ("letter", "alphanumeric", "text"), "arrow": ("arrow",),
    "av-symbol": ("media control", "play button", "audio video symbol"), "currency": ("currency", "dollar"),
    "gender": ("gender symbol", "gender"), "geometric": ("shape", "geometric shape", "circle"),
    "keycap": ("keycap", "key", "number"), "math": ("math symbol", "math", "plus"),
    "other-symbol": ("symbol", "sign"), "punctuation": ("punctuation", "question mark", "exclamation mark"),
    "religion": ("religious symbol", "religion", "cross"), "transport-sign": ("traffic sign", "road sign", "sign"),
    "warning": ("warning sign", "warning"), "zodiac": ("zodiac sign", "zodiac", "astrology"),
    "hotel": ("hotel", "luggage"), "place-building": ("building",),
    "place-geographic": ("landscape", "mountain", "landmark"), "place-map": ("map", "globe"),
    "place-other": ("place", "city"), "place-religious": ("place of worship", "church", "temple"),
    "sky & weather": ("weather", "sky"), "time": ("clock", "time", "watch"),
    "transport-air": ("aircraft", "airplane", "plane"), "transport-ground": ("vehicle", "car"),
    "transport-water": ("boat", "ship"),
}

#: Fashion-MNIST labels (photos.FASHION_MNIST_LABELS order): CLIP's names first, then what icon sets call them.
#: "top" is not a candidate for "T-shirt/top": icon names use it for a position ("align top", "arrow top").
FASHION_MNIST_CANDIDATES: dict[str, tuple[str, ...]] = {
    "T-shirt/top": ("t-shirt", "tshirt", "tee"), "Trouser": ("pair of trousers", "trousers", "pants", "jeans"),
    "Pullover": ("pullover", "sweater", "jumper", "hoodie"), "Dress": ("dress",), "Coat": ("coat", "jacket"),
    "Sandal": ("sandal", "sandals", "flip flops"), "Shirt": ("shirt", "blouse"),
    "Sneaker": ("sneaker", "sneakers", "running shoe", "shoe"),
    "Bag": ("bag", "handbag", "purse", "shopping bag"), "Ankle boot": ("ankle boot", "boot", "boots"),
}
#: How a digit may be named: the first form whose names (summed over digits) most training pictures have is used.
DIGIT_FORMS: tuple[Callable[[int], str], ...] = (
    str, lambda d: f"number {d}", lambda d: f"numeric {d}", lambda d: f"digit {d}",
    lambda d: ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")[d],
)


def candidates_of(labels: Sequence[str], table: Mapping[str, Sequence[str]], fallback: Callable[[str], str]
                  ) -> dict[str, tuple[str, ...]]:
    """Each label's candidates from `table`, or `(fallback(label),)` for a label the table does not know."""
    return {label: tuple(table.get(label, ())) or (fallback(label),) for label in labels}


def choose_classnames(candidates: Mapping[str, Sequence[str]], pictures: Mapping[str, int],
                      min_pictures: int = MIN_PICTURES) -> dict[str, str]:
    """label -> class name: the first of its candidates with `pictures[c] >= min_pictures`, else the one with the
    most pictures (the first on ties); a name another label already took (labels in the given order) is skipped,
    and a label left with none gets its first candidate suffixed by its position ("flag 2")."""
    taken: set[str] = set()
    out = {}
    for i, (label, cands) in enumerate(candidates.items()):
        free = [c for c in cands if c not in taken]
        if not free:
            name = f"{cands[0]} {i + 1}"
        else:
            good = [c for c in free if pictures.get(c, 0) >= min_pictures]
            name = good[0] if good else max(free, key=lambda c: (pictures.get(c, 0), -free.index(c)))
        taken.add(name)
        out[label] = name
    return out


def digit_names(pictures: Mapping[str, int]) -> tuple[str, ...]:
    """The ten digit names in the form (DIGIT_FORMS) that most training pictures name, summed over digits."""
    totals = [sum(pictures.get(form(d), 0) for d in range(10)) for form in DIGIT_FORMS]
    best = DIGIT_FORMS[max(range(len(totals)), key=lambda k: (totals[k], -k))]
    return tuple(best(d) for d in range(10))


def all_candidates() -> set[str]:
    """Every candidate name of every table (what the builder counts in the training captions)."""
    tables = (CATEGORY_CANDIDATES, SUBCATEGORY_CANDIDATES, FASHION_MNIST_CANDIDATES)
    names = {c for t in tables for cands in t.values() for c in cands}
    return names | {form(d) for form in DIGIT_FORMS for d in range(10)}

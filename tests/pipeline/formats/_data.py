"""Generated export sets with awkward tag names, for every project kind."""

from __future__ import annotations

import random

from cvbulk.pipeline.formats import ExportedImage, RegionLabel, image_relpath

AWKWARD_TAGS = [
    "a;b", " lead", "trail ", 'say "hi"', "x|y", "c,d", "naïve 日本", "it's", "back\\slash", "Cat", "cat",
    "dot.", ".hidden", "CON", "#hash", "- dash", ": colon", "[bracket]", "{brace}", "'quoted'", "a/b", "a:b",
    "t" * 256, "é" * 200, "plain",
]


def images_for(kind: str, n: int = 120, *, seed: int = 7, untagged: int = 5, fmt: str = "csv") -> list[ExportedImage]:
    rng = random.Random(seed)
    out: list[ExportedImage] = []
    for i in range(n):
        image_id = f"{rng.getrandbits(128):032x}"
        w, h = rng.randint(50, 4000), rng.randint(50, 4000)
        tags: tuple[str, ...] = ()
        regions: tuple[RegionLabel, ...] = ()
        if i >= untagged:
            if kind == "multiclass":
                tags = (rng.choice(AWKWARD_TAGS),)
            elif kind == "multilabel":
                tags = tuple(dict.fromkeys(rng.sample(AWKWARD_TAGS, rng.randint(1, 4))))
            else:
                boxes = []
                for _ in range(rng.randint(1, 4)):
                    bw, bh = rng.uniform(0.01, 0.6), rng.uniform(0.01, 0.6)
                    boxes.append(RegionLabel(rng.choice(AWKWARD_TAGS), rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh), bw, bh))
                regions = tuple(boxes)
                tags = tuple(dict.fromkeys(r.tag for r in boxes))
        ext = rng.choice([".jpg", ".png", ".bmp"])
        out.append(ExportedImage(
            id=image_id, file=image_relpath(fmt, image_id, ext, tags), width=w, height=h, tags=tags,
            regions=regions, metadata={"source": f"cam{i % 3}", "note": 'a,"b";c'} if i % 2 else {},
            created="2026-11-30T10:00:00Z",
        ))
    return out

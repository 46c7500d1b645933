"""The random-stream tags live in msd_tf/seeding.py alone, and do not collide."""

import pathlib
import re

from msd_tf import seeding


def test_stream_tags_are_distinct_and_pack_is_injective():
    tags = [seeding.INIT_STREAM, seeding.K_STREAM, seeding.EAT_STREAM]
    assert len(set(tags)) == len(tags)
    pairs = [(a, b) for a in range(4) for b in (0, 1, 2, seeding.STRIDE - 1)]
    assert len({seeding.pack(a, b) for a, b in pairs}) == len(pairs)


def test_no_stream_number_is_written_outside_seeding():
    """A tag or stride spelled as a literal elsewhere would drift from seeding.py."""
    root = pathlib.Path(seeding.__file__).parent
    literal = re.compile(r"\b[12]_?000_?00[34]\b")
    found = [f"{p.relative_to(root)}:{i + 1}" for p in root.rglob("*.py")
             if p.name != "seeding.py"
             for i, line in enumerate(p.read_text().splitlines()) if literal.search(line)]
    assert not found, f"stream numbers outside seeding.py: {found}"

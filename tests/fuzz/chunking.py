"""Random chunkings of a byte string: how a body may arrive over the network."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st


@st.composite
def chunkings(draw, data: bytes, max_cuts: int = 16) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=max_cuts)))
    return [data[a:b] for a, b in itertools.pairwise([0, *cuts, len(data)])]

"""Scale actions, and which of them were flaps.

Chapter 12, "Hysteresis to prevent flapping". A flap is a scale action
reversed by the very next one within a few minutes: replicas added
then removed, or removed then added, ten minutes apart or less. Each
one costs a cold start that bought nothing, or streams moved for
nothing, and it is what users of Ray Serve and the HPA report when
replicas go up and down under steady load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

FLAP_WINDOW_MIN = 10


@dataclass(frozen=True)
class Action:
    """The fleet resized at `minute`: replicas added (+) or removed."""

    minute: int
    delta: int


def count_flaps(actions: Sequence[Action],
                window_min: int = FLAP_WINDOW_MIN) -> int:
    """Actions reversed by the next one within `window_min` minutes."""
    return sum(1 for first, then in pairwise(actions)
               if (first.delta > 0) != (then.delta > 0)
               and then.minute - first.minute <= window_min)

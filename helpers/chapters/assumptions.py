"""Chapter "Do the assumptions hold?": the fine walk of its section 5, cached.

Section 4 of the chapter expands the loss along growing OBD deletion sets, in
the open; section 5 repeats that walk on a fine grid of forty sets that start
where the dormant block ends (dormant parameters ranked last, so kept). The
fine walk costs about half a minute per network, so it is cached on disk
(``taylor.obd_deletion_terms`` with ``dormant_last``).
"""

from __future__ import annotations

from collections.abc import Sequence

from helpers import checks, taylor, training


def walk_past_dormant(trained: training.TrainedModel,
                      fractions: Sequence[float]) -> list[taylor.Expansion]:
    """The terms of the loss change for each OBD deletion set of the increasing ``fractions``,
    the dormant parameters (``taylor.dormant``) ranked last, on the post's 55,000 training images."""
    fractions = checks.fractions(fractions, order="increasing")
    return taylor.obd_deletion_terms(trained, fractions, dormant_last=True)

"""The shared emotion vocabulary and each corpus's mapping onto it.

Every reader maps its corpus codes onto these canonical names, so that models trained
on one corpus can be evaluated on another and corpora can be combined.

Conventions (documented in docs/DATA.md, "Emotion labels"):
- TESS "pleasant surprise" (``ps``) is mapped to ``surprise``.
- RAVDESS "calm" stays ``calm``; it exists only in RAVDESS, so a combined or
  cross-corpus run either drops it or maps it to ``neutral`` (``calm_as_neutral``).
"""

from __future__ import annotations

#: Canonical order of the emotion classes. Class indices of a run follow this order,
#: restricted to the classes present in its data, so runs on the same corpus agree.
EMOTIONS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fear",
    "disgust",
    "surprise",
    "boredom",
)


def sort_labels(labels: set[str] | list[str]) -> list[str]:
    """Return the distinct ``labels`` in canonical order (unknown names last, sorted).

    Args:
        labels: emotion names, canonical or not.

    Returns:
        A list of distinct names, canonical ones in :data:`EMOTIONS` order first.
    """
    distinct = set(labels)
    known = [e for e in EMOTIONS if e in distinct]
    extra = sorted(distinct.difference(EMOTIONS))
    return known + extra

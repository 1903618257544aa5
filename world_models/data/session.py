"""The regular US equity session (New York time): the one place its clock constants are written.

LOBSTER files cover 09:30-16:00 (``34200000_57600000`` in their names, milliseconds after
midnight); time-of-day features, session fractions and daily volumes use these. The data
layer owns them so every lobworld layer may import them.
"""

from __future__ import annotations

__all__ = ["SESSION_OPEN_S", "SESSION_CLOSE_S", "SESSION_SECONDS", "SESSION_MINUTES", "SESSION_LENGTH_S"]

SESSION_OPEN_S = 34_200.0
"""09:30, seconds after midnight."""
SESSION_CLOSE_S = 57_600.0
"""16:00, seconds after midnight."""
SESSION_SECONDS = SESSION_CLOSE_S - SESSION_OPEN_S
"""Length of the session, seconds (23,400)."""
SESSION_MINUTES = SESSION_SECONDS / 60.0
"""Length of the session, minutes (390)."""
SESSION_LENGTH_S = SESSION_SECONDS
"""The same as :data:`SESSION_SECONDS` (the name the tick-level modules use)."""

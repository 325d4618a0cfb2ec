"""Steps the running trust takes at most once per interval (retention, the log's clean-up, key
destruction): one clock and one rule for all of them."""

from __future__ import annotations

import time
from collections.abc import Callable


class Every:
    """Says whether an interval has passed since the step last ran (the first ask: yes)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.time) -> None:
        if seconds <= 0:
            raise ValueError("an interval must be > 0 seconds (leave the step out to turn it off)")
        self.seconds = seconds
        self.clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        """True (and the step counts as run now) when the interval has passed."""
        now = self.clock()
        if self._last is not None and now - self._last < self.seconds:
            return False
        self._last = now
        return True

    def ran(self) -> None:
        """The step ran now, out of turn (its interval starts again)."""
        self._last = self.clock()

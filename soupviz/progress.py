"""The one shape of progress report every long-running library function takes: a `Progress`
(work units done of a total, a message, and a running estimate where there is one) passed to a
`ProgressCallback`. The CLI prints them; the pages draw them as progress bars."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Progress:
    """A progress report: `done` of `total` work units, what is being done, and the running
    estimate if any (a `metrics.Record` while an evaluation's batches finish)."""

    done: int
    total: int
    message: str = ""
    partial: Any = None

    @property
    def fraction(self) -> float:
        """How much is done, in [0, 1]."""
        return min(1.0, self.done / self.total) if self.total > 0 else 1.0


ProgressCallback = Callable[[Progress], None]

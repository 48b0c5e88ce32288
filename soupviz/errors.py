"""Errors a user can cause: one sentence naming the input and what to do.

The CLI prints them without a traceback and the dashboard shows them with `st.error`;
anything else that escapes is a bug.
"""


class SoupvizError(Exception):
    """A problem with the user's input (file, folder, weights, setting), not a bug."""


class CheckpointError(SoupvizError):
    """A checkpoint or its card cannot be used: missing, corrupted, or not of the family."""


class DataError(SoupvizError):
    """The evaluation or training data cannot be found or read."""


class SoupWeightsError(SoupvizError):
    """A weight vector that cannot define a soup of the given ingredients."""


class WeightOutOfRangeError(SoupWeightsError):
    """A soup weight outside the range allowed (the simplex, or the extrapolation bounds)."""


class NonFiniteLogitsError(SoupvizError):
    """A soup whose outputs are NaN or infinite, so it cannot be scored."""

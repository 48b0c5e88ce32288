"""soupviz: model soups of adversarially robust image classifiers.

The library owns all the logic (data, models, checkpoints, soups, attacks, corruptions,
evaluation, training, figures); the CLI and the Streamlit dashboard are thin layers over it.
"""

from soupviz.errors import SoupvizError

__all__ = ["SoupvizError"]
__version__ = "0.1.0"

"""Architectures: the registry and `create_model`, and the classifiers it builds.

Importing any module of this folder runs this file first, which imports every file that
registers architectures, so `create_model` knows them all whichever module a caller imports.
"""

from soupviz.models import registry, zoo_architectures  # noqa: F401

"""Architectures: the registry and `create_model`, and one file per architecture family.

Importing any module of this folder runs this file first, which imports every file that
registers architectures, so `create_model` knows them all whichever module a caller imports.
"""

from soupviz.models import dm_wide_resnet, preact_resnet, registry, resnet, tiny, wide_resnet  # noqa: F401

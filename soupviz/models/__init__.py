"""Architectures: the registry and `create_model`, and the classifiers it builds."""

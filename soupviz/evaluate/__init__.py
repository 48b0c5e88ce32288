"""Measuring soups: the attack chain a metric spec names (`methods`), the `Evaluator` over the
results store and the one way to build it (`factory.open_evaluator`), sweeps of many soups,
paired comparisons, output-space ensembles, baselines trained outside the soup, and soupability
(whether two ingredients can be souped at all).
"""

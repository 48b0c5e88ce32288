"""Measuring soups: metric specs and records (and the specs the pages build from their settings),
the `Evaluator` over the results store, paired comparisons, output-space ensembles, baselines
trained outside the soup, and soupability (whether two ingredients can be souped at all).
"""

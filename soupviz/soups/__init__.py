"""Soups: soup-weight maths, the K x P parameter matrix, and `Soup` with its BatchNorm rules."""

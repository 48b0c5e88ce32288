"""Plotly figures and their export: soups in weight space, simplex views, trade-offs,
soupability paths and the insight pages' figures, with the paper style and PNG/SVG/PDF/CSV export.
"""

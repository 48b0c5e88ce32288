"""What a person reads, made from data: labels, tables and figures (soups in weight space,
simplex views, trade-offs, soupability paths, the insight pages' figures) and their export."""

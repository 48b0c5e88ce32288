"""Results as data and where they are kept: metric specs, records with their intervals, the one
store of records, and grids of soups read from it (the shipped store included)."""

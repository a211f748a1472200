"""A finished study's results: the front read back, exports to mmie.py, the ladder report."""

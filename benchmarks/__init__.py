"""Reproducible speed comparisons of chainrule, PyTorch eager and a seed-style NumPy loop."""

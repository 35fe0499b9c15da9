"""Checking gradients: numerical gradient checks, probes that drive any object with
forward/backward (a learner's own class), comparisons with a reference, and the hints that
explain a failure."""

"""Shiren core: the poet service, constrained generation and the 格律 engine."""

__version__ = "0.1.0"

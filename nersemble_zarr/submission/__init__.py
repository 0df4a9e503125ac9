"""Benchmark submissions: the streaming writer (videos, meshes, zip) and the validator."""

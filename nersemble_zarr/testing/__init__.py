"""Synthetic data for tests and demos (as ``zarr.testing``): the sample benchmark generator and a
synthetic FLAME model."""

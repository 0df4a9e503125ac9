"""Readers of a store: xarray (``open_store``, ``open_sequence``), the drop-in data managers,
the torch ``FrameDataset``, and quick looks (``show``)."""

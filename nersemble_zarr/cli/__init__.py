"""The click command-line interface of nersemble-zarr (installed as ``nersemble_zarr.cli``)."""

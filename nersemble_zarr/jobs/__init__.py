"""Running work: the progress display, dask cluster watching (and the job runner)."""

"""Running configs: one run, the job queue and its workers, sweeps and the queue on Dask."""

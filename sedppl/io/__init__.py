"""Catalogs in and results out (astropy tables, Parquet, ArviZ netCDF), and the command line."""

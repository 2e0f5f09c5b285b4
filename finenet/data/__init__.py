"""Datasets: on-disk adapters (VoxCeleb2, 300VW, YouTube, embedded), clip storage, the window loader."""

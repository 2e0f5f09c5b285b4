"""Video I/O: ``stream`` decodes and encodes video frame by frame with PyAV."""

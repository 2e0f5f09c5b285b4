"""Faces: 68-point detectors (dlib, face-alignment), box tracking and cropping, heatmaps."""

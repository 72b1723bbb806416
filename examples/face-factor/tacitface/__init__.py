"""Tacit's face factor: detection with a margin, 5-point alignment and dlib's 128-d
ResNet embedding (face_recognition), calibrated log-likelihood ratios, evaluation."""

__version__ = "0.1.0"

"""A Tacit factor service in Python: the `py-keystroke` model behind the factor API of
docs/factor-api.md (Open Inference Protocol v2 + the job API)."""

__version__ = "0.1.0"

"""Runtime: what the machine provides: model files, precision, progress display."""

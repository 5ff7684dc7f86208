"""Histogram plugin: the intensity histogram of the selected view, with the current window marked."""

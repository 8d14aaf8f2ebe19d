"""MGCMA."""

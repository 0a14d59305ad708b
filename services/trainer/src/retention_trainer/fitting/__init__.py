"""Fitting the bundle's models (`retention_bundle.models`) on training sets: the half of each
model that only the trainer runs."""

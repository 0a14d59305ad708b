"""Classical customer-base baselines: BG/NBD, Gamma-Gamma and their RFM input."""

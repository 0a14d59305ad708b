"""Classical customer-base models, fitted by maximum likelihood: BG/NBD, Gamma-Gamma and their RFM
input. They are the backtest's baselines and the purchase model's two halves."""

"""The bundle's models: each one's parameters (JSON and UBJ) and its predictions."""

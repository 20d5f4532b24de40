"""PyTorch reference models that minigrad's models are checked against (tests and benchmarks only)."""

"""Independent references for the test suite: float64 numpy oracles and shared helpers."""

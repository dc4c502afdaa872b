"""Side-by-side benchmarks against peers (`make bench`); never part of the test suite."""

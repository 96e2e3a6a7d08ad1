"""Benchmarks and the scaled-out topology as plain processes."""

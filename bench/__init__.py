"""Benchmarks: each measures one stage against its simplest baseline, as a ratio in one run."""

"""End-to-end fidelity: what the daemon reports for faces on a labelled clip, against what its model
scores on the same faces' clean crops (`make e2e`, `python -m benchmarks.e2e`)."""

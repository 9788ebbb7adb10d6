"""Benchmarks behind ``sizeseg bench``: speed and memory as ratios against anchors measured in
the same run (OpenCV, scipy, brute force, a supervised training step), never timed tests."""

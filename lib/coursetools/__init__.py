"""coursetools: the scripts behind `make exercises` and `make grade`.

Kept apart from `rnnlib` (the reference implementation learners read): this package
only drives nbgrader over the repository layout described in CONTRIBUTING.md.
"""

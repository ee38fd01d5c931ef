"""rnnlib: the course's reference implementation of recurrent layers in NumPy."""

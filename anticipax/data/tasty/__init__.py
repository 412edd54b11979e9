"""Tasty Videos: readers of the public files, the word vocabulary, the TFDS builder, a generator."""

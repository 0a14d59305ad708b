"""Helpers the tests of several packages share (data slices, the stack, the broker, problems)."""

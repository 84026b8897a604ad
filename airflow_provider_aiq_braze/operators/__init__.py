"""Operators: thin wrappers that give the delivery engine a row contract and a request shape."""

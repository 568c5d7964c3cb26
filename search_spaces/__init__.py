"""The built-in search spaces, installed as package data (see autoquant.space)."""

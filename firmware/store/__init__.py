"""Crash-safe state on disk: atomic TinyDB files partitioned so none grows without bound."""

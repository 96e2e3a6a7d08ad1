"""The pactwatch domain: the Agreement aggregate, its events and its use cases."""

"""Ready-made tasks: collection and item access helpers used by the functional API."""

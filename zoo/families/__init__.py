"""One module per model family; each registers its models when imported (see zoo.registry.FAMILIES)."""

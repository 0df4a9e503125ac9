"""Layer 0: benchmark facts, the store schema, errors, configuration. Imports nothing else of the package."""

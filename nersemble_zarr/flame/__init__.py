"""FLAME: the model file (safe loading, structure checks, batched forward) and the provider of meshes."""

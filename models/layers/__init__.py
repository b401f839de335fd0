"""Layer kinds, one module each: the spec's pydantic model with its limits,
the Keras layer it builds, the numpy step that serves it, and what a search
may vary in it (models.layers.kind says what a kind declares).

The table of kinds is models.layers.registry. The spec's `Layer` union, the
builder, the numpy forward pass and the search's vmapped programs read it and
branch on no kind by name, so a new kind is one new module here, listed in
the registry, and its test.
"""

"""The rows of the compiled split (:mod:`._jit`, :mod:`._kernels`), shared by both. No imports.

Scope rows of the container walk (``_kernels.containers``): its ResourceSpans, where the ScopeSpans payload
begins, where its first span field begins, where the fields after its last span begin, where the payload
ends, and its group (the first scope of the consecutive scopes of the same scope it is merged with)."""

SCOPE_RS, SCOPE_START, SCOPE_FIRST, SCOPE_TAIL, SCOPE_END, SCOPE_GROUP = range(6)
SCOPE_COLUMNS = 6

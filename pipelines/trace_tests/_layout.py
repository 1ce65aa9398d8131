"""What the compiled check (:mod:`pipelines.trace_tests._kernel`) hands back, for code that must not import
numba: a trace's status, and the columns of a failed spec's row."""

UNTESTED, PASSED, FALLBACK, FAILED = 0, 1, 2, 3
R_TRACE, R_SPEC, R_BAD, R_ASSERTION, R_SPAN, R_SPAN_END, R_SELECTED = range(7)
R_COLS = 7

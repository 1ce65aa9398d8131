"""Column numbers shared by the compiled kernels (:mod:`pipelines.exposition._kernels`) and the Python side
(:mod:`pipelines.exposition.columns`, the processors). No imports: both sides read these."""

# The span table of :func:`pipelines.exposition._kernels.walk` (int64, one row per span).
NCOLS = 12
RS, TRACE_AT, SPAN_AT, PARENT_AT, NAME_AT, NAME_LEN, KIND, START, END, STATUS, SPAN_BEGIN, SPAN_END = range(NCOLS)
# The service graph's store (:func:`pipelines.exposition._kernels.pair`): table columns (int64) used, key0, key1,
# key2, home, side (0 client, 1 server), conn (0 "", 1 messaging_system, 2 database), service, peer, root,
# failed; (float64) latency, expires.
T_USED, T_K0, T_K1, T_K2, T_HOME, T_SIDE, T_CONN, T_SVC, T_PEER, T_ROOT, T_FAILED = range(11)
T_INTS = 11
# Completed edges out (int64): client, server, conn (3: virtual_node), failed, virtual (0: no, 1: the server
# is a virtual node, 2: the client is); (float64) client latency, server latency (-1: not seen).
O_CLIENT, O_SERVER, O_CONN, O_FAILED, O_VIRTUAL = range(5)
O_INTS = 5

"""Column numbers shared by the compiled kernels (:mod:`pipelines.exposition._kernels`) and the Python side
(:mod:`pipelines.exposition.columns`, the processors). No imports: both sides read these. (The span table's
columns are the wire package's: ``collector.wire.RS`` ... ``SPAN_END``.)"""

# The service graph's store (:func:`pipelines.exposition._kernels.pair`): one 64-byte row (int64) per slot:
# key0, key1, key2, home, flags (bit 0 used, 1 side (0 client, 1 server), 2-3 conn (0 "", 1 messaging_system,
# 2 database), 4 root, 5 failed, 6 scratch), service | (peer + 1) << 32, latency (ns), expires (float64 bits).
T_K0, T_K1, T_K2, T_HOME, T_FLAGS, T_NODES, T_LAT, T_EXP = range(8)
T_INTS = 8
# Its expiry queue (ring, in order of insertion): key0, key1, key2, home (int64); expires (float64).
Q_INTS = 4
# Completed edges out (int64): client, server, conn (3: virtual_node), failed, virtual (0: no, 1: the server
# is a virtual node, 2: the client is); (float64) client latency, server latency (-1: not seen).
O_CLIENT, O_SERVER, O_CONN, O_FAILED, O_VIRTUAL = range(5)
O_INTS = 5

"""The span table of the column walk (:mod:`._columns`): column numbers shared by the compiled walk and the
code that reads its rows. No imports."""

NCOLS = 12
RS, TRACE_AT, SPAN_AT, PARENT_AT, NAME_AT, NAME_LEN, KIND, START, END, STATUS, SPAN_BEGIN, SPAN_END = range(NCOLS)
FNV_OFFSET = 0xCBF29CE484222325  # FNV-1a, for the hashes of names and values
FNV_PRIME = 0x100000001B3

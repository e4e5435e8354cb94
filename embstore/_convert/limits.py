"""Sizes that bound a conversion's memory and work; module attributes so that tests can
shrink them to exercise block and batch boundaries on small inputs."""

BLOCK_SIZE = 8 << 20  # bytes read per block: small enough to stay in L3 while parsed
PART = 8192  # bytes of text per parallel work item
MAX_LINE = 64 << 20  # longest accepted text line
MAX_WORD = 1 << 20  # longest accepted binary word
ROW_BATCH_BYTES = 8 << 20  # float32 output per kernel batch
MAX_EXAMPLES = 10  # skipped lines kept as examples in the report
# With on_bad_line="skip", a conversion fails when more than half of its records were skipped
# and at least this many: junk (binary data, another format) is not a store, while a small
# hand-made file with a few bad lines still converts.
SKIP_FAIL_MIN = 100

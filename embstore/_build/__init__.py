"""The only way a store is written: streaming writer, vocabulary index, builder."""

"""The critic: a bidirectional character-level encoder that reads whole poems (the BERT beside the GPT).

`model` is the network (no I/O); `critic` loads it and scores, doubts and proposes characters;
`core.infill` says which characters the 格律 plan allows at a position; `core.mend` picks and mends.
"""

"""Stage 1, inputs: paths, S3 objects and stdin become records, in eventTime order.

Framing, envelopes, large documents, the file walk, each file's order and the lean decode all
answer one question, "which records, in what order?", and nothing after this stage reads bytes,
so they live together. Import the modules themselves (engine.inputs.files, ...): this package
re-exports nothing.
"""

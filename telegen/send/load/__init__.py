"""Templates -> sendable batches, once per run before any send.

    batches      read a signal's records, regroup and split them into batches of the configured size,
                 scan each once into its patch plan
    cache        save loaded batches and map them on later loads (shared by a machine's senders)
    compression  patchable gzip and zstd prepared per batch at load time, and the compressed bodies of one send
"""

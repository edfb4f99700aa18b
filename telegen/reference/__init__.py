"""The plain-Python twins of the compiled fast paths.

Every compiled fast path has a plain-Python twin here, one module per
concern: rng (xoshiro256**, telegen/_rng.pxi), patch (scan and patch,
telegen/_scan.pxi and telegen/_patch.pxi), regroup (Regrouper and split,
telegen/_regroup.pxi), gzip (patchable gzip, telegen/_gzip.pyx) and zstd
(patchable zstd, telegen/_zstd.pyx). A twin
is slow and plainly written, decoding with protobuf where the kernel walks
bytes; the tests run the same cases against both and require the same
bytes, so a reader can check the kernel against its twin. Used only by the
tests.
"""

"""``scones etl``: the CIFAR-100 archive -> PNGs + ``.lst`` manifests (+ idempotent S3 upload).

``etl`` does the work, ``cli`` registers the subcommand, ``synthetic`` builds small archives in the
official format for tests and benchmarks.
"""

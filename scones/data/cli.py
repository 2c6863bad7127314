"""``scones etl``: a CIFAR-100 archive -> PNGs + ``.lst`` manifests (+ S3 upload); the work is
``scones.data.etl``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scones.data.etl import (
    DEFAULT_CLASSES,
    OFFICIAL_URL,
    EtlError,
    UploadFailedError,
    extract,
    resolve_archive,
    upload_tree,
)
from scones.errors import EXIT_FAILED, EXIT_USAGE, ErrorTable, user_errors


def _errors() -> ErrorTable:
    return [(EtlError, EXIT_USAGE), (UploadFailedError, EXIT_FAILED)]


@user_errors(_errors)
def run(args: argparse.Namespace) -> int:
    """Handler of ``scones etl``."""
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    archive = resolve_archive(args.archive, cache_dir=args.cache_dir, expected_md5=args.md5 or None)
    result = extract(archive, args.output, classes, progress=not args.quiet)
    for split, counts in result.counts.items():
        detail = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"{split}: {sum(counts.values())} images ({detail})")
    print(f"wrote {args.output}")
    if args.bucket:
        _upload(args, result.files)
    return 0


def _upload(args: argparse.Namespace, files: list[Path]) -> None:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        up = upload_tree(
            boto3.client("s3"),
            args.output,
            files,
            args.bucket,
            args.prefix,
            progress=not args.quiet,
        )
    except (BotoCoreError, ClientError) as exc:
        raise UploadFailedError(f"upload failed: {exc}") from exc
    dest = f"s3://{args.bucket}/{args.prefix.strip('/')}"
    print(f"uploaded {up.uploaded}, unchanged {up.skipped} -> {dest}")


def register(subparsers: Any) -> None:
    """Add ``scones etl`` to the CLI."""
    parser = subparsers.add_parser(
        "etl",
        help="CIFAR-100 archive -> PNGs + .lst manifests (+ S3 upload)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Extract chosen fine-label classes of a CIFAR-100 python archive into PNG files,\n"
            "SageMaker .lst manifests (index<TAB>label<TAB>path) and classes.json.\n\n"
            "The archive is a local .tar.gz or a URL; the official URL\n"
            f"  {OFFICIAL_URL}\n"
            "is downloaded once, MD5-checked and cached (~/.cache/scones or $SCONES_CACHE_DIR).\n"
            "Labels are 0, 1, ... in the order of --classes. File names are deterministic:\n"
            "<split>/<index in the archive>_<class>.png.\n\n"
            "Example:\n"
            "  scones etl --archive cifar-100-python.tar.gz --output data\n"
            "  scones etl --archive A.tar.gz --output data --bucket my-bucket --prefix cifar"
        ),
    )
    parser.add_argument("--archive", required=True, help="CIFAR-100 python .tar.gz path or URL")
    parser.add_argument("--output", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--classes",
        default=",".join(DEFAULT_CLASSES),
        help="comma-separated fine label names, label order (default: %(default)s)",
    )
    parser.add_argument("--bucket", help="also upload the output to this S3 bucket")
    parser.add_argument("--prefix", default="data", help="S3 key prefix (default: %(default)s)")
    parser.add_argument("--md5", help="expected MD5 of the archive (the official URL's is known)")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="download cache (default ~/.cache/scones)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)

"""The ``scones`` command line: one entry point for every stage of the workflow.

Each stage lives in its own module and contributes its subcommands through a
``register(subparsers)`` function; a subcommand's handler takes the parsed
arguments and returns an exit code. Heavy imports (PyTorch, onnxruntime, moto)
happen inside the handlers, so ``scones --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from scones import __version__

# Modules that add subcommands, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "scones.data.cli",  # scones etl
    "scones.training.cli",  # scones train
    "scones.twin.cli",  # scones up / down / status / env / deploy / invoke / run / classify
    "scones.monitor.cli",  # scones monitor
    "scones.graph.cli",  # scones graph
    "scones.console.cli",  # scones console
    "scones.cost.cli",  # scones cost
    "scones.sagemaker_cli",  # scones sagemaker ...
)

DESCRIPTION = """\
Scones Unlimited: classify delivery drivers' vehicles (bicycle or motorcycle) with a
SageMaker model behind a Step Functions workflow of three Lambdas, on AWS or on
the offline twin on this machine.

Typical offline session:
  scones up                                   start local S3, Lambda/Step Functions and endpoint
  scones etl --archive A.tar.gz --output data turn CIFAR-100 into PNGs + .lst manifests
  scones train --data data --model-dir model  train and package model/model.tar.gz
  scones deploy --local                       deploy template.yaml + the model to the twin
  scones classify data/test                   classify a folder of images through the workflow
  scones monitor s3://BUCKET/data_capture --output report
  eval "$(scones env)"                        point boto3 / the AWS CLI at the twin
  scones down                                 stop the twin
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="scones",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"scones {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a stage not installed or not built yet
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

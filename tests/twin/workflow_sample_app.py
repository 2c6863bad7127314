"""A small SAM app with trivial handlers and one layer, for the workflow unit tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

#: The layer's code (``layer/sample_layer.py``): the Ok function imports it, as the real
#: functions import ``scones_common`` from ``CommonLayer``.
LAYER = """
import os

def greeting():
    return os.environ.get("GREETING")
"""

HANDLERS = {
    "ok": """
from sample_layer import greeting

def lambda_handler(event, context):
    return {**event, "greeting": greeting(), "fn": context.function_name}
""",
    "flaky": '''
import json
import os
from pathlib import Path


class FlakyError(Exception):
    """Raised until the counter file reaches FAIL_TIMES calls."""


class FatalError(Exception):
    """Raised when the event asks for it."""


def lambda_handler(event, context):
    counter = Path(event["counter"])
    calls = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(calls))
    if event.get("fatal"):
        raise FatalError("fatal on call %d" % calls)
    if calls <= int(event.get("fail_times", 0)):
        raise FlakyError("call %d failed" % calls)
    return {**event, "calls": calls}
''',
}

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting:
    Type: String
    Default: hello
  BucketName:
    Type: String
    Default: ""
Conditions:
  HasBucket: !Not [!Equals [!Ref BucketName, ""]]
Globals:
  Function:
    Runtime: python3.11
    Handler: app.lambda_handler
    Timeout: 5
    Environment:
      Variables:
        SHARED: same
Resources:
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !If [HasBucket, !Ref BucketName, !Ref AWS::NoValue]
  SampleLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
    Metadata:
      BuildMethod: python3.11
  OkFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${AWS::StackName}-Ok"
      CodeUri: fn_ok/
      Layers: [!Ref SampleLayer]
      Environment:
        Variables:
          GREETING: !Ref Greeting
  FlakyFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn_flaky/
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Name: !Sub "${AWS::StackName}-Machine"
      DefinitionUri: machine.asl.json
      DefinitionSubstitutions:
        OkArn: !GetAtt OkFunction.Arn
        FlakyArn: !GetAtt FlakyFunction.Arn
      Events:
        Upload:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.s3]
              detail:
                bucket:
                  name: [!Ref Bucket]
                object:
                  key: [{ prefix: in/ }]
            InputTransformer:
              InputPathsMap:
                bucket: $.detail.bucket.name
                key: $.detail.object.key
              InputTemplate: '{"b": <bucket>, "k": <key>, "note": "key <key>"}'
"""

ASL = """\
{
  "StartAt": "Flaky",
  "States": {
    "Flaky": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {"FunctionName": "${FlakyArn}", "Payload.$": "$"},
      "OutputPath": "$.Payload",
      "Retry": [{"ErrorEquals": ["FlakyError"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1.0}],
      "Catch": [
        {"ErrorEquals": ["FatalError"], "ResultPath": "$.error", "Next": "Fatal"},
        {"ErrorEquals": ["States.ALL"], "Next": "Other"}
      ],
      "Next": "Ok"
    },
    "Ok": {"Type": "Task", "Resource": "${OkArn}", "End": true},
    "Fatal": {"Type": "Fail", "Error": "CaughtFatal", "CausePath": "$.error.Cause"},
    "Other": {"Type": "Fail", "ErrorPath": "$.Error", "CausePath": "$.Cause"}
  }
}
"""


def write_app(root: Path, template: str = TEMPLATE, asl: str = ASL) -> Path:
    """Write the small SAM app under ``root``; return ``root``."""
    for name, code in HANDLERS.items():
        folder = root / f"fn_{name}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "app.py").write_text(textwrap.dedent(code))
    (root / "layer").mkdir(exist_ok=True)
    (root / "layer" / "sample_layer.py").write_text(textwrap.dedent(LAYER))
    (root / "template.yaml").write_text(template)
    (root / "machine.asl.json").write_text(asl)
    return root

"""``scones console``: a local, read-only web page over the Step Functions and S3 APIs.

It shows what the AWS Step Functions console shows for the workflow, from the same boto3 calls
(ListStateMachines, DescribeStateMachine, ListExecutions, DescribeExecution,
GetExecutionHistory, and S3 for the endpoint's Data Capture), so it works the same against the
offline twin and against an AWS account. Modules:

- ``source``: where the data comes from (the twin's clients or the user's AWS session)
- ``executions``: one page of executions with label, confidence or error (cached describes)
- ``history``: the events table and each state's input and output
- ``payloads``: JSON for display, with ``image_data`` shown as a thumbnail, never as base64
- ``captures``: the newest Data Capture records of the endpoint
- ``app``: the Starlette app (GET only, Host guard, Jinja2 templates with autoescape)
- ``cli``: the ``scones console`` subcommand (uvicorn on 127.0.0.1)
"""

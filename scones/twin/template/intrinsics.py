"""Evaluate CloudFormation intrinsics offline, against parameters and the names the twin gives.

On AWS, CloudFormation evaluates ``Ref``, ``Fn::Sub``, ``Fn::GetAtt``, ``Fn::If`` and friends at
deploy time (the SAM translator leaves them in place). The twin has no CloudFormation, so this
module does it, with moto's account id and names derived from the stack name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from scones.twin.template.errors import UnknownReferenceError, UnsupportedIntrinsicError

ACCOUNT_ID = "123456789012"  # moto's default account: the ARNs the twin hands out use it
PARTITION = "aws"

#: ``AWS::NoValue``: a key or list item that evaluates to this is dropped.
NO_VALUE: Any = object()

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
STATE_MACHINE_TYPES = ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")
LAYER_TYPES = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")

# The property that names a resource, by type; without it the twin derives a name.
_NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Serverless::StateMachine": "Name",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Serverless::LayerVersion": "LayerName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::Logs::LogGroup": "LogGroupName",
}
# ARN templates by type ({partition}, {region}, {account} and {name} filled in).
_ARN = {
    "AWS::S3::Bucket": "arn:{partition}:s3:::{name}",
    "AWS::IAM::Role": "arn:{partition}:iam::{account}:role/{name}",
    **{t: "arn:{partition}:lambda:{region}:{account}:function:{name}" for t in FUNCTION_TYPES},
    **{
        t: "arn:{partition}:states:{region}:{account}:stateMachine:{name}"
        for t in STATE_MACHINE_TYPES
    },
    **{t: "arn:{partition}:lambda:{region}:{account}:layer:{name}:1" for t in LAYER_TYPES},
    # what CloudFormation's GetAtt gives for a log group: its ARN with ":*" at the end
    "AWS::Logs::LogGroup": "arn:{partition}:logs:{region}:{account}:log-group:{name}:*",
}
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Evaluates intrinsics against one template's parameters, conditions and resource names."""

    def __init__(
        self, template: dict[str, Any], parameters: dict[str, str], stack_name: str, region: str
    ) -> None:
        self.resources: dict[str, Any] = template.get("Resources") or {}
        self.parameters = parameters
        self.stack_name = stack_name
        self.region = region
        self.mappings: dict[str, Any] = template.get("Mappings") or {}
        self._conditions_raw: dict[str, Any] = template.get("Conditions") or {}
        self._conditions: dict[str, bool] = {}
        self._names: dict[str, str] = {}
        self._functions: dict[str, Callable[[Any], Any]] = {
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::If": self._if,
            "Fn::Equals": lambda arg: str(self.resolve(arg[0])) == str(self.resolve(arg[1])),
            "Fn::Not": lambda arg: not self.resolve(arg[0]),
            "Fn::And": lambda arg: all(self.resolve(a) for a in arg),
            "Fn::Or": lambda arg: any(self.resolve(a) for a in arg),
            "Fn::Join": lambda arg: str(arg[0]).join(str(i) for i in self.resolve(arg[1])),
            "Fn::Select": lambda arg: self.resolve(arg[1])[int(self.resolve(arg[0]))],
            "Fn::Split": lambda arg: str(self.resolve(arg[1])).split(str(arg[0])),
            "Fn::FindInMap": self._find_in_map,
            "Fn::ToJsonString": lambda arg: json.dumps(self.resolve(arg), separators=(",", ":")),
        }

    def type_of(self, logical_id: str) -> str:
        """The ``Type`` of a resource ("" when it has none)."""
        return str(self.resources[logical_id].get("Type", ""))

    def resource_name(self, logical_id: str) -> str:
        """The physical name: the naming property when set, else one derived from the stack."""
        if logical_id not in self._names:
            rtype = self.type_of(logical_id)
            props = self.resources[logical_id].get("Properties") or {}
            name = self.resolve(props.get(_NAME_PROPERTY.get(rtype, ""), NO_VALUE))
            if not name or name is NO_VALUE:
                suffix = "images-local" if rtype == "AWS::S3::Bucket" else logical_id
                name = f"{self.stack_name}-{suffix}"
            self._names[logical_id] = str(name)
        return self._names[logical_id]

    def ref(self, name: str) -> Any:
        """``Ref``: a pseudo parameter, a parameter's value, or a resource's name (ARN for some)."""
        if name == "AWS::NoValue":
            return NO_VALUE
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": self.stack_name,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:{PARTITION}:cloudformation:{self.region}:{ACCOUNT_ID}"
            f":stack/{self.stack_name}/local",
            "AWS::NotificationARNs": [],
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            if self.type_of(name) in STATE_MACHINE_TYPES + LAYER_TYPES:
                return self.get_att(name, "Arn")
            return self.resource_name(name)
        raise UnknownReferenceError(f"Ref to unknown parameter or resource {name!r}")

    def get_att(self, logical_id: str, attribute: str) -> str:
        """``Fn::GetAtt`` for the attributes the twin knows (Arn, names, a bucket's DomainName)."""
        if logical_id not in self.resources:
            raise UnknownReferenceError(f"GetAtt on unknown resource {logical_id!r}")
        rtype = self.type_of(logical_id)
        name = self.resource_name(logical_id)
        if attribute == "Arn" and rtype in _ARN:
            return _ARN[rtype].format(
                partition=PARTITION, region=self.region, account=ACCOUNT_ID, name=name
            )
        if attribute in ("Name", "BucketName", "StateMachineName") and rtype in _ARN:
            return name
        if rtype == "AWS::S3::Bucket" and attribute == "DomainName":
            return f"{name}.s3.amazonaws.com"
        raise UnknownReferenceError(
            f"GetAtt {logical_id}.{attribute}: the twin does not know this attribute of "
            f"{rtype or 'the resource'}"
        )

    def condition(self, name: str) -> bool:
        """The value of a named condition of the ``Conditions`` section (evaluated once)."""
        if name not in self._conditions:
            if name not in self._conditions_raw:
                raise UnknownReferenceError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self.resolve(self._conditions_raw[name]))
        return self._conditions[name]

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        """``Fn::Sub``: replace ``${Name}``, ``${Resource.Attribute}``; ``${!x}`` stays ``${x}``."""

        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr and not expr.startswith("AWS::"):
                resource, _, attribute = expr.partition(".")
                return self.get_att(resource, attribute)
            value = self.ref(expr)
            if value is NO_VALUE:
                raise UnknownReferenceError("${AWS::NoValue} cannot be used in Fn::Sub")
            return str(value)

        return _PLACEHOLDER.sub(replace, text)

    def resolve(self, value: Any) -> Any:
        """Evaluate every intrinsic inside ``value``; ``AWS::NoValue`` drops keys/items."""
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                function = self._functions.get(key)
                if function is None:
                    raise UnsupportedIntrinsicError(
                        f"{key} cannot be evaluated by the offline twin"
                    )
                return function(arg)
        out_map = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out_map.items() if v is not NO_VALUE}

    def _get_att(self, arg: Any) -> str:
        resource, attribute = (arg if isinstance(arg, list) else str(arg).split(".", 1))[:2]
        return self.get_att(str(resource), str(self.resolve(attribute)))

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            return self.sub(str(arg[0]), self.resolve(arg[1] if len(arg) > 1 else {}))
        return self.sub(str(arg), {})

    def _if(self, arg: Any) -> Any:
        condition, if_true, if_false = arg
        return self.resolve(if_true if self.condition(condition) else if_false)

    def _find_in_map(self, arg: Any) -> Any:
        name, top, second = (self.resolve(a) for a in arg)
        try:
            return self.mappings[name][top][second]
        except (KeyError, TypeError):
            raise UnknownReferenceError(f"FindInMap {name}/{top}/{second} not found") from None

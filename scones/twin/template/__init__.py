"""Read ``template.yaml`` + ``samconfig.toml`` the way SAM does, for the offline twin.

The twin deploys what the SAM template declares, nothing else: parameter defaults with the
``samconfig.toml`` overrides, Conditions, ``Globals`` merged into each function, each
function's code folder, layers, handler and environment (intrinsics resolved), the state
machine's definition with its ``DefinitionSubstitutions`` applied, the image bucket and the
EventBridge rule that starts the workflow on upload.

Why not ``aws-sam-translator`` (what ``sam`` uses): it merges Globals and expands SAM resources,
but leaves every intrinsic and all parameter checks to CloudFormation, which the twin has to do
itself anyway, and importing it takes 0.6-0.9 s against 5 ms for a whole read here
(docs/sam.md, "Reading the template offline"; a test compares the two on template.yaml).

Modules: ``loading`` (YAML with short tags), ``samconfig``, ``parameters``, ``intrinsics``
(the resolver), ``functions``, ``state_machine``, ``reader`` (``read_app``), ``model``.
"""

from scones.twin.template.errors import (
    MissingPropertyError,
    SamConfigError,
    TemplateError,
    TemplateNotFoundError,
    UnknownReferenceError,
    UnresolvedPlaceholderError,
    UnsupportedIntrinsicError,
    UnsupportedLayerError,
)
from scones.twin.template.loading import load_template
from scones.twin.template.model import EventRule, FunctionSpec, StateMachineSpec, TwinApp
from scones.twin.template.reader import read_app
from scones.twin.template.samconfig import parse_parameter_overrides
from scones.twin.template.state_machine import placeholders, substitute_definition

__all__ = [
    "EventRule",
    "FunctionSpec",
    "MissingPropertyError",
    "SamConfigError",
    "StateMachineSpec",
    "TemplateError",
    "TemplateNotFoundError",
    "TwinApp",
    "UnknownReferenceError",
    "UnresolvedPlaceholderError",
    "UnsupportedIntrinsicError",
    "UnsupportedLayerError",
    "load_template",
    "parse_parameter_overrides",
    "placeholders",
    "read_app",
    "substitute_definition",
]

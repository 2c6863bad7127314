"""The errors of the template reader: each names what the twin cannot deploy and why."""

from __future__ import annotations


class TemplateError(Exception):
    """Base class: the template or samconfig.toml cannot be deployed to the twin."""


class TemplateNotFoundError(TemplateError):
    """template.yaml (or a file it names) does not exist."""


class MissingPropertyError(TemplateError):
    """A resource lacks a property the twin needs (CodeUri, Handler, DefinitionUri, ...)."""


class UnknownReferenceError(TemplateError):
    """A Ref, GetAtt or ${...} names a parameter, resource or attribute that does not exist."""


class UnsupportedIntrinsicError(TemplateError):
    """An intrinsic function the twin cannot evaluate offline (Fn::ImportValue, ...)."""


class UnsupportedLayerError(TemplateError):
    """A function lists a layer that is not a LayerVersion of this template with a local folder."""


class UnresolvedPlaceholderError(TemplateError):
    """The state machine definition still holds a ${...} after the substitutions."""


class SamConfigError(TemplateError):
    """samconfig.toml cannot be read or its parameter_overrides are malformed."""

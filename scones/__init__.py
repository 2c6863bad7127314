"""scones: the Scones Unlimited image-classification workflow, on AWS and offline."""

__version__ = "0.1.0"

"""The offline twin: local S3 (SeaweedFS), Lambda + Step Functions (moto), and the endpoint."""

"""ML stages: ETL, training, serving, the SageMaker path and monitoring."""

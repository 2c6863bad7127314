"""Inference code shipped inside model.tar.gz as code/inference.py."""

"""Local model store: conversion of Hugging Face checkpoints to GGUF, and the model names and blob
digests named models will be stored under (names.py; the store itself and pulls come later)."""
from .convert import ConvertError, convert_hf
from .names import ModelName, blob_file_name, parse_name

__all__ = ["ConvertError", "ModelName", "blob_file_name", "convert_hf", "parse_name"]

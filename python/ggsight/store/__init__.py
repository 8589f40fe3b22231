"""Local model store: conversion of Hugging Face checkpoints to GGUF (pulls come later)."""
from .convert import ConvertError, convert_hf

__all__ = ["ConvertError", "convert_hf"]

"""Profiles: how long each piece takes on each hardware class, under each runtime.

The rest of the project only sees the `ProfileTable` (see `profiles.table`); TVM and ONNX
Runtime are imported lazily inside the adapters so planning from a CSV needs neither.
"""

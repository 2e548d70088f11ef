"""The serving runtime: model store, ONNX Runtime sessions, preprocessing, batching.

Nothing under this package imports torch (DESIGN.md decision 1).
"""

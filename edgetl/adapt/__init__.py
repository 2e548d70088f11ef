"""The adaptation loop: labels, training jobs, adapter versions, evaluation.

Modules that import torch (`trainer_head`, `trainer_lora`, `worker`) run
only in the spawned training process; the rest is safe for the server.
"""

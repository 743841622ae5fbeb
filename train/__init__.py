"""Training entry points for VideoGLaMM (accelerate DDP or DeepSpeed).

Imports `videoglamm`, never the reverse.
"""

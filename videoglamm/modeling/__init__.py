"""The parts of VideoGLaMM, one module each, composed in `videoglamm.py`."""

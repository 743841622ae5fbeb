"""Model parts of VideoGLaMM and SAMWISE: one file per part, composed by the model builders."""

"""Model manifest, build scripts and verification (TensorFlow only inside the build venv)."""

"""Build-venv scripts (TensorFlow, dlib); only dlib_reader is importable on the device."""

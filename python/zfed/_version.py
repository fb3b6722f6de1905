"""The zfed version, the same as the C programs' (CMakeLists.txt project
VERSION).  CMake refuses to configure when the two differ, and
tests/integration/test_python_package.py compares it with `zfed-controller
--version`."""

__version__ = "0.1.0"

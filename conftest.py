"""Repository-level pytest wiring.

The harness plugin (``harness.pytest_plugin``) is loaded through its ``pytest11``
entry point once the package is installed (``pip install -e .``, which the
README's commands do); nothing needs registering here.
"""

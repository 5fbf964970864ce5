"""Code used by one chapter only.

Import the modules, e.g. ``from helpers.chapters import tiny``:

- ``tiny``: the tiny 49-16-16-10 network and its full Hessian (chapter "The Taylor expansion
  of the loss"; chapter "Optimal Brain Surgeon" reuses it).
- ``explorer``: the interactive pruning explorer (chapter "Explore it yourself").
"""

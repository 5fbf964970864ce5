"""Code that replicates the 2016 post (Parts II and III of the book).

Import the modules, e.g. ``from helpers.post import as_ran, networks``:

- ``published``: the post's published numbers (``published_results.csv``).
- ``networks``: the post's trained networks, their variants, seeds and initial scale.
- ``described``: the post's runs as its text describes them.
- ``as_ran``: the post's runs as its code ran them.
- ``checkpoints``: the post's own trained networks (``checkpoints.load_post_network``).
- ``forensics``: the replay's tested causes (reader offsets, the dropout run's cut, 2016 pixels).
- ``observations``: the measurements behind the post's four observations (Part III).
"""

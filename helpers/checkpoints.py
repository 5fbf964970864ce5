"""Public entry point to the 2016 post's trained networks (chapter "As the code ran").

``from helpers.checkpoints import load_post_network``; the implementation,
the checkpoint files and their licence live in :mod:`helpers.post.checkpoints`.
"""

from helpers.post.checkpoints import (CHECKPOINTS, PostCheckpoint, checkpoint_path,
                                      load_post_network, read_post_checkpoint)

__all__ = ["CHECKPOINTS", "PostCheckpoint", "checkpoint_path", "load_post_network",
           "read_post_checkpoint"]

"""mkdocs hooks of the docs build.

The tutorial pages train and audit small networks while the site is built. Such
models are dominated by per-operation overhead, and on a busy 2-core machine two
torch intra-op threads made the audit tutorial's 60 training steps take 5-16 s
instead of 0.4 s with one thread (measured while writing it). The build process
therefore runs torch with one thread; this is the build's own process, not a
user's, and nothing in initlab changes the thread count.
"""

from __future__ import annotations


def on_startup(command: str, dirty: bool) -> None:
    import torch

    torch.set_num_threads(1)

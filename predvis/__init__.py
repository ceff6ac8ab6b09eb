"""predvis: a command-line laboratory for predictive models of vision."""

import os

__version__ = "0.1.0"

# Large CPU tensors on transparent huge pages. PyTorch reads this once, at its first allocation, so
# it is set here, before predvis imports torch. Without it every fresh tensor above glibc's mmap
# threshold (32 MB) is page-faulted in 4 KB at a time on each allocation: PVM's unit inputs at 64
# streams (68 MB a step in layer 0) spent a fifth of the step's CPU time in page faults.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

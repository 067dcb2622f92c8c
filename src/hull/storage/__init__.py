"""Graph drivers (overlay2, vfs) and layer archives (tar <-> directory, whiteouts, tar-split).

Owns the bytes of layers on disk; knows nothing of images, chain ids or references (images/ does).
"""

"""The Dockerfile builder: parser, .dockerignore matcher, build context, step cache, and the builder itself.

Makes images only through the image store (hull.images) and runs RUN steps only as containers of
the ContainerManager; never touches layers, mounts or processes directly.
"""

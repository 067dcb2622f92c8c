"""Talking to registries (Registry HTTP API v2 / OCI distribution): manifests, blobs, auth, pull and push.
It changes the image store only through ImageService and the distribution metadata; it never touches containers."""

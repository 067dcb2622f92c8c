"""hull-runtime: the OCI runtime that turns a bundle (config.json + rootfs) into a container.
It owns namespaces, mounts, pivot_root, cgroups and process security; it knows nothing of images or the daemon."""

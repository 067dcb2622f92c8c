"""hull-shim: the per-container monitor that parents a container's init and keeps its stdio and exit status.
It talks to the OCI runtime below and answers the daemon above; it never reads the image store."""

"""Volumes and container mounts: named and anonymous volumes of the local driver under volumes/<name>/, and the
parsing of -v, --mount, --tmpfs and --volumes-from into mount points; it never touches the image store or networks."""

"""hulld: wiring, configuration, startup/restore and the event bus of the daemon.
It owns the data root; it reaches containers only through shims and the OCI runtime."""

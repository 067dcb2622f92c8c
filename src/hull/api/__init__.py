"""The Docker Engine API over HTTP: routing, version negotiation, errors, stream framing, one module per resource.
It translates requests into calls on the daemon's services; it keeps no state and never touches the data root itself."""

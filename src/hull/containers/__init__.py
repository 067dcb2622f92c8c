"""Container records and lifecycle: config.v2.json/hostconfig.json, the OCI bundle, json-file logs, restart.
It drives shims and the runtime through their interfaces; it never writes image-store files itself."""

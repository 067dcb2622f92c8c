"""The `hull` command: docker's verbs and flags, spoken to hulld over the Engine API.
It may only talk to the daemon through the API; it never touches the data root itself."""

"""Networks of one daemon: bridge driver, IPAM, namespaces, NAT and published ports, embedded DNS.

Owns <data-root>/network/, <exec-root>/netns/, the hull bridges and veths, and hull's iptables
chains; it never touches containers' records or filesystems (the container manager asks it).
"""

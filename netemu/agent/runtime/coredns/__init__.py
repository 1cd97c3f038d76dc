"""netemu's built-in CoreDNS (the cluster DNS): Corefile, zone, handler, wire, the app."""

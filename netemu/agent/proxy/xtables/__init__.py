"""The iptables machinery every mode that writes iptables rules shares (mode-neutral).

The iptables mode writes all of its rules here; the IPVS mode writes its fixed chains (masquerade,
source ranges, NodePort filtering) the same way. So the pieces both need live here, outside
either mode's package (modes never import each other, .importlinter): rule.py tokenizes one rule
spec; dump.py is the one parser of iptables-save/restore text; apply.py runs a backend's binaries
(one restore, save, -N/-C/-I of a mode's jump rules) through an injectable Exec; trace.py (with
trace_match.py) walks a dump the way the kernel walks a packet, with the mode's standard jumps.
No chain of any mode is named here.
"""

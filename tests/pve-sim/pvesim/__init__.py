"""pvesim - a Proxmox VE REST API simulator (Python standard library only).

See ../pve-sim.py for the entry point and the architecture map, and
../README.md for the scenario format, faults and the control API.
"""

VERSION = "1.1"

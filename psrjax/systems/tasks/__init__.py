"""Task bases and components between the system protocol (`psrjax.systems.base`) and the
systems: what several papers share, imported by systems, which never import each other."""

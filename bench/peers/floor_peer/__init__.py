"""The floor: a bare startproject app serving the peers' todo list with no authentication at all."""

"""python -m buff_dataplane: the buff command line."""

from buff_dataplane.cli import run

run()

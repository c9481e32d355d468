"""One module per ``farm`` sub-command (see ``farm/cli.py``)."""

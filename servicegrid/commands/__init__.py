"""Subcommands of the servicegrid CLI (each: add_parser(sub) and a handler)."""

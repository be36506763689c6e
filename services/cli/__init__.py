"""The `backlot` command line."""

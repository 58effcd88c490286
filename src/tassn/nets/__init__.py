"""tassn.nets."""

"""tassn.render."""

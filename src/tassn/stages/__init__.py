"""tassn.stages."""

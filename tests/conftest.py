"""Makes the shared test helpers in this folder (e.g. ``tiny_pme``) importable from every test package."""

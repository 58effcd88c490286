"""LightningDataModules for the synthetic hand videos, STB and MHP, and the clip pipeline they share."""

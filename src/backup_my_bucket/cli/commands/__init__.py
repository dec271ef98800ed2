"""One module per command family; each registers its commands on the group in cli.main."""

"""The team stack: its server, accounts, front door, secrets and set-up."""

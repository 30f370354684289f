"""Commands users run besides the five stages (each a `python -m mlpipeline.commands.<name>`)."""

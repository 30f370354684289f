"""`mlpipeline check`: params and preflight."""

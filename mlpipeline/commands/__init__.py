"""The `mlpipeline` command line's commands (mlpipeline/cli.py groups them), one module each."""

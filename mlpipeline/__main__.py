"""`python -m mlpipeline`: the `mlpipeline` command line where its script is not installed
(the containers, which run the project from a mounted folder)."""

from mlpipeline.cli import main

main(prog_name="mlpipeline")

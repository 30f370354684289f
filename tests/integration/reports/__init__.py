"""The comparison report, its plots and the pull-request comment."""

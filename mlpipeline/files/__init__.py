"""Files: where they live, all-or-nothing outputs, tables, pickles, md5s, dvc.yaml."""

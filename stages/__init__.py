"""The five pipeline stages (load → preprocess → train → evaluate → save) and what they share."""

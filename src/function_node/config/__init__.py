"""config.yaml and backend.yaml: typed models, loading with line-numbered errors, the home directory."""

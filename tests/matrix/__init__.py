"""The rendering matrix: dry-runs of the llama70b playbooks over many configurations."""

"""smlplay: an Ansible-like playbook engine for LLM inference stacks on Slurm clusters."""

__version__ = "0.1.0"

"""Click commands of ``smlplay``, one module per command (registered in engine.cli)."""

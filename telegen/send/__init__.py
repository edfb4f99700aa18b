"""The sender: load templates, patch, transport. Never imports the generator."""

"""One module per resource: features (read and render), labels, sync, health."""

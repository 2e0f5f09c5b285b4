"""Image operations with no learned parameters."""

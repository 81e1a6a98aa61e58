"""Project configuration: settings and URLs."""

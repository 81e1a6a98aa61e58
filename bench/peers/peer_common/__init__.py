"""Settings, hasher and helpers shared by the benchmark's peer projects."""

"""SNN architectures and their ANN counterparts (plain nn.Modules, time-first)."""

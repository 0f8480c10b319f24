"""The research engine: data, strategy grammar, features, labels, trainer, backtester. Plain Python."""

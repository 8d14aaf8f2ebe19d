"""IEMOCAP builder, demo corpus, manifests and cross-validation splits (see data/README.md)."""

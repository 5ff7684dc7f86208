"""Evaluation: zero-shot classification, retrieval and linear probes on frozen embeddings."""

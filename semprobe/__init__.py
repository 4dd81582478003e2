"""semprobe: train and dissect Simplicial-Embedding (SEM) self-supervised models.

Lavoie et al., "Simplicial Embeddings in Self-Supervised Learning and Downstream Classification",
ICLR 2023 (arXiv 2204.00616).
"""

__version__ = "0.1.0"

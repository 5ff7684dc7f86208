"""Training data: study manifests, dataset adapters, image cache, augmentation, datasets."""

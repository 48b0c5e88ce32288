"""CIFAR-10-C-style corruptions in torch and the image filters they are made of."""
